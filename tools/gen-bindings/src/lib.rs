//! Reads a Rust crate's C API from its source (with `syn`) and writes it as C# P/Invoke
//! declarations: `[LibraryImport]` methods with blittable signatures, the status enums, the
//! `#[repr(C)]` structs passed by pointer and the integer constants, as csbindgen would, but with
//! `LibraryImport` (source-generated stubs, no runtime marshalling).
//!
//! What is read, walking the module tree from the crate root (`mod x;` to `x.rs` or `x/mod.rs`):
//! - every `#[no_mangle] pub extern "C" fn`;
//! - the enums and structs those functions name, transitively through struct fields;
//! - every `pub const` of an integer type.
//!
//! Items behind `#[cfg(test)]` are skipped; items behind `#[cfg(feature = "<test feature>")]` (or
//! in a module behind it) form a second, test-only set, rendered into a file of their own. Other
//! `cfg`s (architectures) are read as one; two definitions of a function must then agree.
//!
//! Mapping: integers to their C# keyword types (`usize` to `nuint`, `c_char` to `byte`), pointers
//! to pointers (`*const [u8; 16]` to `byte*`), a pointer to a struct with private fields (an
//! opaque handle) to `nint`, struct fields `snake_case` to `PascalCase`, array fields to `fixed`
//! buffers. A function returning an enum that documents a value with `errno` gets
//! `SetLastError = true`.
//!
//! Nothing here names a function of this project: the API is whatever the source declares.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use syn::{Attribute, Expr, FnArg, Item, Lit, Meta, NestedMeta, Pat, ReturnType, Type, UseTree, Visibility};

/// Which declarations an item belongs to: the shipped API or the test hooks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gate {
    Shipped,
    Test,
}

/// Where and how one output file declares its part of the API.
pub struct Target<'a> {
    /// File-scoped namespace, e.g. `OtelThreadContext`.
    pub namespace: &'a str,
    /// The `static unsafe partial class` holding the methods and constants.
    pub class: &'a str,
    /// The C# expression naming the library in `[LibraryImport(...)]`.
    pub library: &'a str,
}

/// A C type as C# sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Ty {
    Void,
    /// A C# keyword type: `byte`, `nuint`, ...
    Prim(&'static str),
    /// A generated enum or struct.
    Named(String),
    /// A struct whose layout callers cannot see: only ever behind a pointer, as `nint`.
    Opaque,
    Ptr(Box<Ty>),
    Array(Box<Ty>, i128),
}

/// The Rust names of the C types the C# side spells as a keyword type.
fn primitive(name: &str) -> Option<&'static str> {
    Some(match name {
        "u8" | "c_uchar" | "c_char" => "byte",
        "i8" | "c_schar" => "sbyte",
        "u16" | "c_ushort" => "ushort",
        "i16" | "c_short" => "short",
        "u32" | "c_uint" => "uint",
        "i32" | "c_int" => "int",
        "u64" | "c_ulonglong" => "ulong",
        "i64" | "c_longlong" => "long",
        "usize" | "size_t" | "uintptr_t" => "nuint",
        "isize" | "ssize_t" | "intptr_t" => "nint",
        "f32" | "c_float" => "float",
        "f64" | "c_double" => "double",
        _ => return None,
    })
}

/// What a file's `use ... as Alias` statements rename: alias to original name.
type Aliases = HashMap<String, String>;

struct Function {
    name: String,
    docs: Vec<String>,
    params: Vec<(String, Type)>,
    ret: Option<Type>,
    gate: Gate,
    aliases: std::rc::Rc<Aliases>,
}

struct Enum {
    name: String,
    docs: Vec<String>,
    /// The `#[repr(...)]` integer type, as C#'s underlying type.
    repr: Option<&'static str>,
    variants: Vec<(String, Vec<String>, Option<Expr>)>,
}

struct Struct {
    name: String,
    docs: Vec<String>,
    /// `#[repr(C)]` without `packed`/`align`, every field `pub`: callers may see the layout.
    visible: bool,
    fields: Vec<(String, Vec<String>, Type)>,
    aliases: std::rc::Rc<Aliases>,
}

struct Const {
    name: String,
    docs: Vec<String>,
    ty: Option<&'static str>,
    public: bool,
    expr: Expr,
}

/// The C API of one crate, as read from its source.
#[derive(Default)]
pub struct Api {
    functions: Vec<Function>,
    enums: Vec<Enum>,
    structs: Vec<Struct>,
    consts: Vec<Const>,
    /// Files read, in order (for messages and tests).
    pub files: Vec<PathBuf>,
    /// Things skipped that a reader of the output may want to know about.
    pub notes: Vec<String>,
}

/// How a `#[cfg]` on an item or module affects it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cfg {
    Normal,
    Test,
    Skip,
}

fn cfg_of(attrs: &[Attribute], test_feature: Option<&str>) -> Cfg {
    let mut cfg = Cfg::Normal;
    for attr in attrs.iter().filter(|a| a.path.is_ident("cfg")) {
        let Ok(Meta::List(list)) = attr.parse_meta() else {
            continue;
        };
        for nested in &list.nested {
            match nested {
                NestedMeta::Meta(Meta::Path(p)) if p.is_ident("test") => return Cfg::Skip,
                NestedMeta::Meta(Meta::NameValue(nv)) if nv.path.is_ident("feature") => {
                    if let (Lit::Str(s), Some(f)) = (&nv.lit, test_feature) {
                        if s.value() == f {
                            cfg = Cfg::Test;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    cfg
}

fn docs(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path.is_ident("doc"))
        .filter_map(|a| match a.parse_meta() {
            Ok(Meta::NameValue(nv)) => match nv.lit {
                Lit::Str(s) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        // `///` alone is an empty string: a paragraph break, kept as an empty line.
        .flat_map(|s| {
            let lines: Vec<String> = s
                .lines()
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
                .collect();
            if lines.is_empty() {
                vec![String::new()]
            } else {
                lines
            }
        })
        .collect()
}

/// The words inside `#[repr(...)]`; `align(N)` as `align`.
fn repr(attrs: &[Attribute]) -> Vec<String> {
    let mut words = Vec::new();
    for attr in attrs.iter().filter(|a| a.path.is_ident("repr")) {
        if let Ok(Meta::List(list)) = attr.parse_meta() {
            for nested in &list.nested {
                if let NestedMeta::Meta(m) = nested {
                    if let Some(id) = m.path().get_ident() {
                        words.push(id.to_string());
                    }
                }
            }
        }
    }
    words
}

fn collect_aliases(tree: &UseTree, aliases: &mut Aliases) {
    match tree {
        UseTree::Path(p) => collect_aliases(&p.tree, aliases),
        UseTree::Rename(r) => {
            aliases.insert(r.rename.to_string(), r.ident.to_string());
        }
        UseTree::Group(g) => g.items.iter().for_each(|t| collect_aliases(t, aliases)),
        UseTree::Name(_) | UseTree::Glob(_) => {}
    }
}

impl Api {
    /// Reads the crate whose root file (`lib.rs`) is `root`. Items behind
    /// `#[cfg(feature = "<test_feature>")]` become test hooks.
    pub fn read(root: &Path, test_feature: Option<&str>) -> Result<Api, String> {
        let mut api = Api::default();
        api.read_file(
            root,
            root.parent().unwrap_or(Path::new(".")),
            Gate::Shipped,
            test_feature,
        )?;
        Ok(api)
    }

    /// Reads one module file; `dir` is where its `mod x;` children live.
    fn read_file(&mut self, file: &Path, dir: &Path, gate: Gate, test_feature: Option<&str>) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        self.files.push(file.to_owned());
        let mut aliases = Aliases::new();
        for item in &parsed.items {
            if let Item::Use(u) = item {
                collect_aliases(&u.tree, &mut aliases);
            }
        }
        let ctx = Ctx {
            file,
            dir,
            test_feature,
            aliases: std::rc::Rc::new(aliases),
        };
        self.read_items(&parsed.items, &ctx, gate)
    }

    fn read_items(&mut self, items: &[Item], ctx: &Ctx, gate: Gate) -> Result<(), String> {
        for item in items {
            let attrs: &[Attribute] = match item {
                Item::Fn(i) => &i.attrs,
                Item::Mod(i) => &i.attrs,
                Item::Enum(i) => &i.attrs,
                Item::Struct(i) => &i.attrs,
                Item::Const(i) => &i.attrs,
                _ => continue,
            };
            let gate = match cfg_of(attrs, ctx.test_feature) {
                Cfg::Skip => continue,
                Cfg::Test => Gate::Test,
                Cfg::Normal => gate,
            };
            match item {
                Item::Mod(m) => {
                    let name = m.ident.to_string();
                    if let Some((_, inner)) = &m.content {
                        let sub = Ctx {
                            file: ctx.file,
                            dir: &ctx.dir.join(&name),
                            test_feature: ctx.test_feature,
                            aliases: ctx.aliases.clone(),
                        };
                        self.read_items(inner, &sub, gate)?;
                        continue;
                    }
                    let path_attr =
                        m.attrs
                            .iter()
                            .find(|a| a.path.is_ident("path"))
                            .and_then(|a| match a.parse_meta() {
                                Ok(Meta::NameValue(nv)) => match nv.lit {
                                    Lit::Str(s) => Some(s.value()),
                                    _ => None,
                                },
                                _ => None,
                            });
                    let (file, dir) = match path_attr {
                        Some(p) => {
                            let file = ctx.file.parent().unwrap_or(Path::new(".")).join(p);
                            let dir = file.with_extension("");
                            (file, dir)
                        }
                        None => {
                            let flat = ctx.dir.join(format!("{name}.rs"));
                            let nested = ctx.dir.join(&name).join("mod.rs");
                            match (flat.exists(), nested.exists()) {
                                (true, _) => (flat, ctx.dir.join(&name)),
                                (false, true) => (nested, ctx.dir.join(&name)),
                                (false, false) => {
                                    return Err(format!(
                                        "{}: module {name}: no {} nor {}",
                                        ctx.file.display(),
                                        flat.display(),
                                        nested.display()
                                    ))
                                }
                            }
                        }
                    };
                    self.read_file(&file, &dir, gate, ctx.test_feature)?;
                }
                Item::Fn(f) => {
                    let exported = f.attrs.iter().any(|a| a.path.is_ident("no_mangle"));
                    let c_abi = f
                        .sig
                        .abi
                        .as_ref()
                        .is_some_and(|abi| abi.name.as_ref().is_none_or(|n| n.value() == "C"));
                    if !(exported && c_abi && matches!(f.vis, Visibility::Public(_))) {
                        continue;
                    }
                    let name = f.sig.ident.to_string();
                    let mut params = Vec::new();
                    for input in &f.sig.inputs {
                        let FnArg::Typed(pt) = input else {
                            return Err(format!("{name}: a method receiver in a C function"));
                        };
                        let Pat::Ident(id) = &*pt.pat else {
                            return Err(format!("{name}: a parameter that is not a plain name"));
                        };
                        params.push((id.ident.to_string(), (*pt.ty).clone()));
                    }
                    let ret = match &f.sig.output {
                        ReturnType::Default => None,
                        ReturnType::Type(_, t) => Some((**t).clone()),
                    };
                    self.functions.push(Function {
                        name,
                        docs: docs(&f.attrs),
                        params,
                        ret,
                        gate,
                        aliases: ctx.aliases.clone(),
                    });
                }
                Item::Enum(e) => {
                    let words = repr(&e.attrs);
                    let repr = words
                        .iter()
                        .find_map(|w| if w == "C" { Some("int") } else { primitive(w) });
                    let mut variants = Vec::new();
                    for v in &e.variants {
                        if !matches!(v.fields, syn::Fields::Unit) {
                            variants.clear();
                            break;
                        }
                        variants.push((
                            v.ident.to_string(),
                            docs(&v.attrs),
                            v.discriminant.as_ref().map(|(_, e)| e.clone()),
                        ));
                    }
                    self.enums.push(Enum {
                        name: e.ident.to_string(),
                        docs: docs(&e.attrs),
                        repr,
                        variants,
                    });
                }
                Item::Struct(s) => {
                    let words = repr(&s.attrs);
                    let mut visible =
                        words.iter().any(|w| w == "C") && !words.iter().any(|w| w == "packed" || w == "align");
                    let mut fields = Vec::new();
                    match &s.fields {
                        syn::Fields::Named(named) => {
                            for f in &named.named {
                                visible &= matches!(f.vis, Visibility::Public(_));
                                let name = f.ident.as_ref().map(ToString::to_string).unwrap_or_default();
                                fields.push((name, docs(&f.attrs), f.ty.clone()));
                            }
                        }
                        _ => visible = false,
                    }
                    self.structs.push(Struct {
                        name: s.ident.to_string(),
                        docs: docs(&s.attrs),
                        visible,
                        fields,
                        aliases: ctx.aliases.clone(),
                    });
                }
                Item::Const(c) => {
                    let ty = match &*c.ty {
                        Type::Path(p) => p.path.get_ident().and_then(|id| primitive(&id.to_string())),
                        _ => None,
                    }
                    .filter(|t| !matches!(*t, "float" | "double"));
                    let public = matches!(c.vis, Visibility::Public(_));
                    if public && ty.is_none() {
                        self.notes
                            .push(format!("pub const {} skipped: not of an integer type", c.ident));
                    }
                    self.consts.push(Const {
                        name: c.ident.to_string(),
                        docs: docs(&c.attrs),
                        ty,
                        public,
                        expr: (*c.expr).clone(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The value of a constant integer expression: literals, other constants of the crate,
    /// arithmetic, shifts, bit operations and casts.
    fn eval(&self, expr: &Expr, depth: u32) -> Result<i128, String> {
        if depth > 32 {
            return Err("constant expression nests too deep (a cycle?)".into());
        }
        let sub = |e: &Expr| self.eval(e, depth + 1);
        Ok(match expr {
            Expr::Lit(l) => match &l.lit {
                Lit::Int(i) => i.base10_parse::<i128>().map_err(|e| e.to_string())?,
                _ => return Err("a constant that is not an integer".into()),
            },
            Expr::Paren(p) => sub(&p.expr)?,
            Expr::Group(g) => sub(&g.expr)?,
            Expr::Cast(c) => sub(&c.expr)?,
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => -sub(&u.expr)?,
            Expr::Binary(b) => {
                let (l, r) = (sub(&b.left)?, sub(&b.right)?);
                use syn::BinOp::*;
                let v = match b.op {
                    Add(_) => l.checked_add(r),
                    Sub(_) => l.checked_sub(r),
                    Mul(_) => l.checked_mul(r),
                    Div(_) => l.checked_div(r),
                    Rem(_) => l.checked_rem(r),
                    Shl(_) => u32::try_from(r).ok().and_then(|r| l.checked_shl(r)),
                    Shr(_) => u32::try_from(r).ok().and_then(|r| l.checked_shr(r)),
                    BitAnd(_) => Some(l & r),
                    BitOr(_) => Some(l | r),
                    BitXor(_) => Some(l ^ r),
                    _ => return Err("an operator a constant cannot use".into()),
                };
                v.ok_or("a constant expression that overflows")?
            }
            Expr::Path(p) => {
                let name = p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
                let mut found = self.consts.iter().filter(|c| c.name == name);
                match (found.next(), found.next()) {
                    (Some(c), None) => sub(&c.expr)?,
                    (Some(_), Some(_)) => return Err(format!("constant {name} is defined twice")),
                    (None, _) => return Err(format!("unknown constant {name}")),
                }
            }
            _ => return Err("an expression the generator cannot evaluate".into()),
        })
    }

    /// The C# view of `ty`, written in a file with `aliases`.
    fn ty(&self, ty: &Type, aliases: &Aliases) -> Result<Ty, String> {
        Ok(match ty {
            Type::Ptr(p) => match self.ty(&p.elem, aliases)? {
                // A pointer to an array is a pointer to its first element.
                Ty::Array(elem, _) => Ty::Ptr(elem),
                elem => Ty::Ptr(Box::new(elem)),
            },
            Type::Array(a) => Ty::Array(Box::new(self.ty(&a.elem, aliases)?), self.eval(&a.len, 0)?),
            Type::Paren(p) => self.ty(&p.elem, aliases)?,
            Type::Group(g) => self.ty(&g.elem, aliases)?,
            Type::Tuple(t) if t.elems.is_empty() => Ty::Void,
            Type::Path(p) if p.qself.is_none() => {
                let last = p.path.segments.last().ok_or("an empty type path")?;
                if !matches!(last.arguments, syn::PathArguments::None) {
                    return Err(format!("generic type {} (not a C type)", last.ident));
                }
                let written = last.ident.to_string();
                let name = aliases.get(&written).cloned().unwrap_or(written);
                if name == "c_void" {
                    Ty::Void
                } else if let Some(prim) = primitive(&name) {
                    Ty::Prim(prim)
                } else if name == "bool" {
                    return Err("bool (not blittable for LibraryImport: use u8)".into());
                } else if self.enums.iter().any(|e| e.name == name) {
                    Ty::Named(name)
                } else if let Some(s) = self.structs.iter().find(|s| s.name == name) {
                    if s.visible {
                        Ty::Named(name)
                    } else {
                        Ty::Opaque
                    }
                } else {
                    return Err(format!("type {name} is not defined in the crate nor a C type"));
                }
            }
            _ => return Err("a type with no C equivalent".into()),
        })
    }

    /// A parameter, return or field type in C#.
    fn cs(ty: &Ty) -> Result<String, String> {
        Ok(match ty {
            Ty::Void => "void".into(),
            Ty::Prim(p) => (*p).into(),
            Ty::Named(n) => n.clone(),
            Ty::Ptr(inner) if **inner == Ty::Opaque => "nint".into(),
            Ty::Ptr(inner) => format!("{}*", Self::cs(inner)?),
            Ty::Opaque => return Err("a struct of hidden layout passed by value".into()),
            Ty::Array(..) => return Err("an array passed by value".into()),
        })
    }

    /// The generated types `ty` names, directly or through struct fields.
    fn reach(&self, ty: &Ty, into: &mut BTreeSet<String>) -> Result<(), String> {
        match ty {
            Ty::Ptr(inner) | Ty::Array(inner, _) => self.reach(inner, into),
            Ty::Named(n) if into.insert(n.clone()) => {
                if let Some(s) = self.structs.iter().find(|s| &s.name == n) {
                    for (field, _, fty) in &s.fields {
                        let t = self
                            .ty(fty, &s.aliases)
                            .map_err(|e| format!("{}.{field}: {e}", s.name))?;
                        self.reach(&t, into)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The functions of `gate`, one per name (cfg variants must agree), in source order, with
    /// their C# signature parts.
    fn functions(&self, gate: Gate) -> Result<Vec<Signature<'_>>, String> {
        let mut out: Vec<Signature> = Vec::new();
        for f in self.functions.iter().filter(|f| f.gate == gate) {
            let ret = match &f.ret {
                Some(t) => self
                    .ty(t, &f.aliases)
                    .map_err(|e| format!("{}: return type: {e}", f.name))?,
                None => Ty::Void,
            };
            let mut tys = vec![ret.clone()];
            let mut params = Vec::new();
            for (name, t) in &f.params {
                let ty = self
                    .ty(t, &f.aliases)
                    .map_err(|e| format!("{}: parameter {name}: {e}", f.name))?;
                let cs = Self::cs(&ty).map_err(|e| format!("{}: parameter {name}: {e}", f.name))?;
                params.push(format!("{cs} {}", identifier(name)));
                tys.push(ty);
            }
            let ret = Self::cs(&ret).map_err(|e| format!("{}: return type: {e}", f.name))?;
            if let Some(same) = out.iter().find(|s| s.f.name == f.name) {
                if same.ret != ret || same.params != params {
                    return Err(format!("{}: defined twice with different signatures", f.name));
                }
                continue;
            }
            out.push(Signature { f, ret, params, tys });
        }
        Ok(out)
    }

    /// Whether a call returning `ty` may leave the OS error in `errno`: it returns an enum one of
    /// whose values is documented as saying why through `errno`. Its P/Invoke then sets
    /// `SetLastError`, so the caller reads the error with `Marshal.GetLastPInvokeError`.
    fn reports_errno(&self, ty: &Ty) -> bool {
        let Ty::Named(name) = ty else { return false };
        self.enums.iter().find(|e| &e.name == name).is_some_and(|e| {
            e.variants
                .iter()
                .any(|(_, d, _)| d.iter().any(|l| l.contains("`errno`")))
        })
    }

    /// The C# file declaring the `gate` part of the API.
    pub fn render(&self, gate: Gate, target: &Target) -> Result<String, String> {
        let functions = self.functions(gate)?;
        let mut types = BTreeSet::new();
        for Signature { tys, .. } in &functions {
            for t in tys {
                self.reach(t, &mut types)?;
            }
        }
        if gate == Gate::Test {
            // Types the shipped file declares already.
            let mut shipped = BTreeSet::new();
            for Signature { tys, .. } in self.functions(Gate::Shipped)? {
                for t in &tys {
                    self.reach(t, &mut shipped)?;
                }
            }
            types.retain(|t| !shipped.contains(t));
        }

        let mut o = String::new();
        o.push_str("// <auto-generated/>\n");
        o.push_str("// Generated by tools/gen-bindings from the C API under native/; do not edit.\n");
        o.push_str("// Regenerate with scripts/dev.sh gen, which CI runs with --check.\n\n");
        o.push_str("using System.Runtime.InteropServices;\n\n");
        let _ = writeln!(o, "namespace {};\n", target.namespace);

        for e in self.enums.iter().filter(|e| types.contains(&e.name)) {
            let repr = e
                .repr
                .ok_or(format!("enum {}: no #[repr(<integer>)] to give it a C size", e.name))?;
            if e.variants.is_empty() {
                return Err(format!("enum {}: only enums of plain values cross a C API", e.name));
            }
            doc(&mut o, "", &e.docs);
            let _ = writeln!(o, "internal enum {} : {repr}\n{{", e.name);
            let mut next = 0i128;
            for (name, docs, value) in &e.variants {
                if let Some(v) = value {
                    next = self.eval(v, 0).map_err(|err| format!("{}::{name}: {err}", e.name))?;
                }
                doc(&mut o, "    ", docs);
                let _ = writeln!(o, "    {name} = {next},");
                next += 1;
            }
            o.push_str("}\n\n");
        }

        for s in self.structs.iter().filter(|s| types.contains(&s.name)) {
            doc(&mut o, "", &s.docs);
            let _ = writeln!(
                o,
                "[StructLayout(LayoutKind.Sequential)]\ninternal unsafe struct {}\n{{",
                s.name
            );
            for (i, (name, docs, ty)) in s.fields.iter().enumerate() {
                let what = |e: String| format!("{}.{name}: {e}", s.name);
                let field = match self.ty(ty, &s.aliases).map_err(what)? {
                    Ty::Array(elem, n) => match *elem {
                        Ty::Prim(p) => format!("fixed {p} {}[{n}]", pascal(name)),
                        _ => {
                            return Err(what(
                                "an array of non-primitive elements (C# has no such fixed buffer)".into(),
                            ))
                        }
                    },
                    t => format!("{} {}", Self::cs(&t).map_err(what)?, pascal(name)),
                };
                if i > 0 {
                    o.push('\n');
                }
                doc(&mut o, "    ", docs);
                let _ = writeln!(o, "    public {field};");
            }
            o.push_str("}\n\n");
        }

        let _ = writeln!(o, "internal static unsafe partial class {}\n{{", target.class);
        let mut first = true;
        let mut gap = |o: &mut String| {
            if !std::mem::take(&mut first) {
                o.push('\n');
            }
        };
        if gate == Gate::Shipped {
            for c in self.consts.iter().filter(|c| c.public) {
                let Some(ty) = c.ty else { continue };
                let value = self.eval(&c.expr, 0).map_err(|e| format!("constant {}: {e}", c.name))?;
                // C# sizes (arrays, fixed buffers, spans, stackalloc) are int: a size constant
                // that fits is declared as one.
                let ty = if ty == "nuint" && i32::try_from(value).is_ok() {
                    "int"
                } else {
                    ty
                };
                gap(&mut o);
                doc(&mut o, "    ", &c.docs);
                let _ = writeln!(o, "    internal const {ty} {} = {value};", c.name);
            }
        }
        for Signature { f, ret, params, tys } in &functions {
            gap(&mut o);
            doc(&mut o, "    ", &f.docs);
            let errno = if self.reports_errno(&tys[0]) {
                ", SetLastError = true"
            } else {
                ""
            };
            let _ = writeln!(o, "    [LibraryImport({}{errno})]", target.library);
            let _ = writeln!(
                o,
                "    internal static partial {ret} {}({});",
                f.name,
                params.join(", ")
            );
        }
        o.push_str("}\n");
        Ok(o)
    }
}

/// The first line (1-based) where `a` and `b` differ, or `None` when they are equal.
pub fn first_difference(a: &str, b: &str) -> Option<usize> {
    if a == b {
        return None;
    }
    let mut lines = a.lines().zip(b.lines()).enumerate();
    let common = a.lines().count().min(b.lines().count());
    Some(lines.find(|(_, (x, y))| x != y).map_or(common, |(i, _)| i) + 1)
}

/// A function as C# declares it: return type, parameters, and the types they name (return first).
struct Signature<'a> {
    f: &'a Function,
    ret: String,
    params: Vec<String>,
    tys: Vec<Ty>,
}

struct Ctx<'a> {
    file: &'a Path,
    dir: &'a Path,
    test_feature: Option<&'a str>,
    aliases: std::rc::Rc<Aliases>,
}

/// `snake_case` as `PascalCase`, the C# spelling of a field.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A Rust parameter name as a C# identifier (`out` becomes `@out`).
fn identifier(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "abstract",
        "as",
        "base",
        "bool",
        "break",
        "byte",
        "case",
        "catch",
        "char",
        "checked",
        "class",
        "const",
        "continue",
        "decimal",
        "default",
        "delegate",
        "do",
        "double",
        "else",
        "enum",
        "event",
        "explicit",
        "extern",
        "false",
        "finally",
        "fixed",
        "float",
        "for",
        "foreach",
        "goto",
        "if",
        "implicit",
        "in",
        "int",
        "interface",
        "internal",
        "is",
        "lock",
        "long",
        "namespace",
        "new",
        "null",
        "object",
        "operator",
        "out",
        "override",
        "params",
        "private",
        "protected",
        "public",
        "readonly",
        "ref",
        "return",
        "sbyte",
        "sealed",
        "short",
        "sizeof",
        "stackalloc",
        "static",
        "string",
        "struct",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "uint",
        "ulong",
        "unchecked",
        "unsafe",
        "ushort",
        "using",
        "virtual",
        "void",
        "volatile",
        "while",
    ];
    if KEYWORDS.contains(&name) {
        format!("@{name}")
    } else {
        name.to_owned()
    }
}

/// Rust doc text as XML doc text: escaped, `code` as `<c>code</c>`, links as their text.
fn xml(line: &str) -> String {
    let escaped = line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let text = escaped.replace("[`", "`").replace("`]", "`");
    if text.matches('`').count() % 2 == 1 {
        // A code span continued on another line: left as written.
        return text;
    }
    let parts = text.split('`').enumerate();
    parts
        .map(|(i, p)| {
            if i % 2 == 1 {
                format!("<c>{p}</c>")
            } else {
                p.to_owned()
            }
        })
        .collect()
}

/// Writes Rust doc lines as an XML doc comment: the text before the first `# Heading` as the
/// summary, the sections after it as remarks.
fn doc(o: &mut String, indent: &str, lines: &[String]) {
    let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return;
    }
    let split = lines.iter().position(|l| l.starts_with("# ")).unwrap_or(lines.len());
    let (summary, remarks) = lines.split_at(split);
    let mut summary: Vec<&str> = summary.to_vec();
    while summary.last().is_some_and(|l| l.is_empty()) {
        summary.pop();
    }
    fn block(o: &mut String, indent: &str, tag: &str, body: &[&str]) {
        let _ = writeln!(o, "{indent}/// <{tag}>");
        for l in body {
            let text = match l.strip_prefix("# ") {
                Some(heading) => format!("{heading}:"),
                None => xml(l),
            };
            let _ = writeln!(o, "{indent}///{}{text}", if text.is_empty() { "" } else { " " });
        }
        let _ = writeln!(o, "{indent}/// </{tag}>");
    }
    match summary.len() {
        0 => {}
        1 => {
            let _ = writeln!(o, "{indent}/// <summary>{}</summary>", xml(summary[0]));
        }
        _ => block(o, indent, "summary", &summary),
    }
    if !remarks.is_empty() {
        block(o, indent, "remarks", remarks);
    }
}

#[cfg(test)]
mod tests;
