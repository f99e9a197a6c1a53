//! Reads a Rust crate's C API from its source (with `syn`) and writes it as C# `[LibraryImport]`
//! declarations with blittable signatures, as csbindgen would.
//!
//! Read, walking the module tree from the crate root: every `#[no_mangle] pub extern "C" fn`, the
//! enums and `#[repr(C)]` structs they name (transitively through fields), and every integer
//! `pub const`. `#[cfg(test)]` items are skipped; items behind `#[cfg(feature = "<test feature>")]`
//! are test hooks, written to a file of their own; other `cfg`s are read as one (a function defined
//! for two architectures must have one signature).
//!
//! Mapping: integers to C# keyword types (`usize` to `nuint`, `c_char` to `byte`), a pointer to an
//! array to a pointer to its element, a pointer to a struct with private fields (a handle) to
//! `nint`, field names to `PascalCase`, array fields to `fixed` buffers. A function whose
//! documentation names `errno` gets `SetLastError = true`. Nothing here
//! names an item of this project: the API is whatever the source declares.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use syn::visit_mut::VisitMut;
use syn::{Attribute, Expr, Field, FnArg, Item, ItemFn, ItemStruct, Lit, Meta, NestedMeta, Pat, ReturnType, Type};

/// Which declarations an item belongs to: the shipped API or the test hooks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gate {
    Shipped,
    Test,
}

/// Where and how one output file declares its part of the API: its namespace, the class of its
/// methods and constants, the C# expression naming the library in `[LibraryImport(...)]`.
pub struct Target<'a> {
    pub namespace: &'a str,
    pub class: &'a str,
    pub library: &'a str,
}

/// The C# keyword type of a Rust or C integer or float type.
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

/// The name `ty` ends with, when it is a path (`Status` in `crate::ffi::Status`).
fn path(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// The C# type of a constant of type `ty`, when it is an integer.
fn integer(ty: &Type) -> Option<&'static str> {
    primitive(&path(ty)?.ident.to_string()).filter(|p| !matches!(*p, "float" | "double"))
}

/// What a file's `use ... as Alias` statements rename (alias to original name): types are looked
/// up as defined.
struct Aliases(HashMap<String, String>);

impl VisitMut for Aliases {
    fn visit_use_rename_mut(&mut self, r: &mut syn::UseRename) {
        self.0.insert(r.rename.to_string(), r.ident.to_string());
    }

    fn visit_type_path_mut(&mut self, p: &mut syn::TypePath) {
        if let Some(last) = p.path.segments.last_mut() {
            if let Some(original) = self.0.get(&last.ident.to_string()) {
                last.ident = syn::Ident::new(original, last.ident.span());
            }
        }
    }
}

/// A function with its C# declaration.
type Declared<'a> = (&'a ItemFn, String);

/// The C API of one crate, as read from its source.
pub struct Api {
    /// The exported functions, enums, structs and constants, in source order, with their gates.
    items: Vec<(Gate, Item)>,
    test_feature: Option<String>,
}

/// The doc comment lines; `///` alone (a paragraph break) as an empty line.
fn docs(attrs: &[Attribute]) -> Vec<String> {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path.is_ident("doc")) {
        if let Ok(Meta::NameValue(syn::MetaNameValue { lit: Lit::Str(s), .. })) = attr.parse_meta() {
            let text = s.value();
            let text = if text.is_empty() { " " } else { &text };
            for l in text.lines() {
                lines.push(l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned());
            }
        }
    }
    lines
}

/// What is inside `#[name(...)]`, e.g. `C` and `align(64)` in `#[repr(C, align(64))]`.
fn nested(attrs: &[Attribute], name: &str) -> Vec<Meta> {
    let lists = attrs
        .iter()
        .filter(|a| a.path.is_ident(name))
        .map(Attribute::parse_meta);
    let nested = lists.flat_map(|list| match list {
        Ok(Meta::List(list)) => list.nested.into_iter().collect(),
        _ => Vec::new(),
    });
    nested
        .filter_map(|n| if let NestedMeta::Meta(m) = n { Some(m) } else { None })
        .collect()
}

/// The words inside `#[repr(...)]`, e.g. `C` and `align`.
fn repr(attrs: &[Attribute]) -> Vec<String> {
    let words = nested(attrs, "repr")
        .into_iter()
        .map(|m| m.path().get_ident().map(ToString::to_string));
    words.flatten().collect()
}

/// Whether `f` is callable from C by name.
fn exported(f: &ItemFn) -> bool {
    // `extern fn` without a name is `extern "C" fn`.
    let c_abi = matches!(&f.sig.abi, Some(abi) if abi.name.as_ref().is_none_or(|n| n.value() == "C"));
    let no_mangle = f.attrs.iter().any(|a| a.path.is_ident("no_mangle"));
    no_mangle && c_abi && matches!(f.vis, syn::Visibility::Public(_))
}

/// Whether callers may see the layout of `s`: `#[repr(C)]` without `packed`/`align`, named
/// fields, all `pub`.
fn visible(s: &ItemStruct) -> bool {
    let repr = repr(&s.attrs);
    let layout = repr.iter().any(|w| w == "C") && !repr.iter().any(|w| w == "packed" || w == "align");
    let public = s.fields.iter().all(|f| matches!(f.vis, syn::Visibility::Public(_)));
    layout && public && matches!(s.fields, syn::Fields::Named(_))
}

impl Api {
    /// Reads the crate whose root file (`lib.rs`) is `root`. Items behind
    /// `#[cfg(feature = "<test_feature>")]` become test hooks.
    pub fn read(root: &Path, test_feature: Option<&str>) -> Result<Api, String> {
        let mut api = Api {
            items: Vec::new(),
            test_feature: test_feature.map(str::to_owned),
        };
        api.read_file(root, root.parent().unwrap_or(Path::new(".")), Gate::Shipped)?;
        Ok(api)
    }

    /// Reads one module file; `dir` is where its `mod x;` children live.
    fn read_file(&mut self, file: &Path, dir: &Path, gate: Gate) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        // Once to learn the renames, once to undo them wherever they are used.
        let mut aliases = Aliases(HashMap::new());
        (0..2).for_each(|_| aliases.visit_file_mut(&mut parsed));
        self.read_items(parsed.items, dir, gate)
    }

    /// The gate of an item with `attrs` in a scope of `gate`, or `None` for a `#[cfg(test)]` item.
    fn gate_of(&self, attrs: &[Attribute], gate: Gate) -> Option<Gate> {
        let test_feature = |lit: &Lit| matches!(lit, Lit::Str(s) if Some(s.value()) == self.test_feature);
        let mut gate = Some(gate);
        for cfg in nested(attrs, "cfg") {
            match cfg {
                Meta::Path(p) if p.is_ident("test") => return None,
                Meta::NameValue(nv) if nv.path.is_ident("feature") && test_feature(&nv.lit) => gate = Some(Gate::Test),
                _ => {}
            }
        }
        gate
    }

    fn read_items(&mut self, items: Vec<Item>, dir: &Path, gate: Gate) -> Result<(), String> {
        for item in items {
            let attrs = match &item {
                Item::Fn(i) if exported(i) => &i.attrs,
                Item::Mod(i) => &i.attrs,
                Item::Enum(i) => &i.attrs,
                Item::Struct(i) => &i.attrs,
                Item::Const(i) => &i.attrs,
                _ => continue,
            };
            let Some(gate) = self.gate_of(attrs, gate) else {
                continue;
            };
            match item {
                Item::Mod(m) => {
                    let sub = dir.join(m.ident.to_string());
                    if let Some((_, inner)) = m.content {
                        self.read_items(inner, &sub, gate)?;
                        continue;
                    }
                    // `name.rs`, else `name/mod.rs` (read_file names the latter when neither exists).
                    let flat = dir.join(format!("{}.rs", m.ident));
                    let path = if flat.exists() { flat } else { sub.join("mod.rs") };
                    self.read_file(&path, &sub, gate)?;
                }
                item => self.items.push((gate, item)),
            }
        }
        Ok(())
    }

    /// The enum or struct named `name`.
    fn find(&self, name: &str) -> Option<&Item> {
        self.items.iter().map(|(_, item)| item).find(|item| match item {
            Item::Enum(e) => e.ident == name,
            Item::Struct(s) => s.ident == name,
            _ => false,
        })
    }

    /// The value of a constant integer expression: literals, other constants of the crate,
    /// arithmetic, shifts, bit operations and casts.
    fn eval(&self, expr: &Expr) -> Result<i128, String> {
        Ok(match expr {
            Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse().map_err(|e| e.to_string())?,
            Expr::Paren(p) => self.eval(&p.expr)?,
            Expr::Cast(c) => self.eval(&c.expr)?,
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => -self.eval(&u.expr)?,
            Expr::Binary(b) => {
                let (l, r) = (self.eval(&b.left)?, self.eval(&b.right)?);
                use syn::BinOp::*;
                let v = match b.op {
                    Add(_) => l.checked_add(r),
                    Sub(_) => l.checked_sub(r),
                    Mul(_) => l.checked_mul(r),
                    Div(_) => l.checked_div(r),
                    Shl(_) => u32::try_from(r).ok().and_then(|r| l.checked_shl(r)),
                    Shr(_) => u32::try_from(r).ok().and_then(|r| l.checked_shr(r)),
                    BitAnd(_) => Some(l & r),
                    BitOr(_) => Some(l | r),
                    _ => return Err("an operator a constant cannot use".into()),
                };
                v.ok_or("a constant expression that overflows")?
            }
            Expr::Path(p) => {
                let name = p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
                let consts = self.items.iter().filter_map(|(_, item)| match item {
                    Item::Const(c) if c.ident == name => Some(c),
                    _ => None,
                });
                match consts.collect::<Vec<_>>()[..] {
                    [c] => self.eval(&c.expr)?,
                    [] => return Err(format!("unknown constant {name}")),
                    _ => return Err(format!("constant {name} is defined twice")),
                }
            }
            _ => return Err("an expression the generator cannot evaluate".into()),
        })
    }

    /// The C# spelling of `ty` as a parameter, return or field type; adds the enums and structs
    /// it names, directly or through struct fields, to `named`.
    fn cs(&self, ty: &Type, named: &mut BTreeSet<String>) -> Result<String, String> {
        let found = |t: &Type| path(t).and_then(|s| self.find(&s.ident.to_string()));
        let hidden = |t: &Type| matches!(found(t), Some(Item::Struct(s)) if !visible(s));
        Ok(match ty {
            // A pointer to an array is a pointer to its first element.
            Type::Ptr(p) => match &*p.elem {
                Type::Array(a) => format!("{}*", self.cs(&a.elem, named)?),
                elem if hidden(elem) => "nint".into(),
                elem => format!("{}*", self.cs(elem, named)?),
            },
            Type::Tuple(t) if t.elems.is_empty() => "void".into(),
            Type::Array(_) => return Err("an array passed by value".into()),
            _ if hidden(ty) => return Err("a struct of hidden layout passed by value".into()),
            _ => {
                let segment = path(ty).ok_or("a type with no C equivalent")?;
                let name = segment.ident.to_string();
                if !segment.arguments.is_empty() {
                    return Err(format!("generic type {name} (not a C type)"));
                }
                match (name.as_str(), primitive(&name), self.find(&name)) {
                    ("c_void", ..) => "void".into(),
                    ("bool", ..) => return Err("bool (not blittable for LibraryImport: use u8)".into()),
                    (_, Some(prim), _) => prim.into(),
                    (.., Some(item)) => {
                        if let (true, Item::Struct(s)) = (named.insert(name.clone()), item) {
                            for field in &s.fields {
                                self.field(s, field, named)?;
                            }
                        }
                        name
                    }
                    _ => return Err(format!("type {name} is not defined in the crate nor a C type")),
                }
            }
        })
    }

    /// A struct field as C# declares it: an array as a `fixed` buffer.
    fn field(&self, s: &ItemStruct, field: &Field, named: &mut BTreeSet<String>) -> Result<String, String> {
        let name = field.ident.as_ref().map(ToString::to_string).unwrap_or_default();
        let what = |e: String| format!("{}.{name}: {e}", s.ident);
        let Type::Array(a) = &field.ty else {
            let ty = self.cs(&field.ty, named).map_err(what)?;
            return Ok(format!("{ty} {}", pascal(&name)));
        };
        let why = "an array of non-primitive elements (C# has no such fixed buffer)";
        let elem = path(&a.elem).and_then(|s| primitive(&s.ident.to_string()));
        let (elem, len) = (elem.ok_or(what(why.into()))?, self.eval(&a.len).map_err(what)?);
        Ok(format!("fixed {elem} {}[{len}]", pascal(&name)))
    }

    /// The functions of `gate`, one per name, in source order, as C# declares them; and the enums
    /// and structs they name.
    fn functions(&self, gate: Gate) -> Result<(Vec<Declared<'_>>, BTreeSet<String>), String> {
        let (mut out, mut named) = (Vec::<Declared>::new(), BTreeSet::new());
        for (_, item) in self.items.iter().filter(|(g, _)| *g == gate) {
            let Item::Fn(f) = item else { continue };
            let name = &f.sig.ident;
            let mut cs = |what: &str, t: &Type| self.cs(t, &mut named).map_err(|e| format!("{name}: {what}: {e}"));
            let ret = match &f.sig.output {
                ReturnType::Default => "void".into(),
                ReturnType::Type(_, t) => cs("return type", t)?,
            };
            let mut params = Vec::new();
            for input in &f.sig.inputs {
                let param = match input {
                    FnArg::Typed(pt) => match &*pt.pat {
                        Pat::Ident(id) => Some((id.ident.to_string(), &pt.ty)),
                        _ => None,
                    },
                    FnArg::Receiver(_) => None,
                };
                let (param, ty) = param.ok_or(format!("{name}: a parameter that is not a plain name"))?;
                let ty = cs(&format!("parameter {param}"), ty)?;
                params.push(format!("{ty} {}", identifier(&param)));
            }
            let decl = format!("internal static partial {ret} {name}({});", params.join(", "));
            match out.iter().find(|(same, _)| same.sig.ident == *name) {
                Some((_, d)) if *d != decl => return Err(format!("{name}: defined twice with different signatures")),
                Some(_) => {}
                None => out.push((f, decl)),
            }
        }
        Ok((out, named))
    }

    /// The C# file declaring the `gate` part of the API.
    pub fn render(&self, gate: Gate, target: &Target) -> Result<String, String> {
        let (functions, mut types) = self.functions(gate)?;
        if gate == Gate::Test {
            // Types the shipped file declares already.
            let (_, shipped) = self.functions(Gate::Shipped)?;
            types.retain(|t| !shipped.contains(t));
        }
        let mut o = String::from("// <auto-generated/>\n");
        o.push_str("// Generated by tools/gen-bindings from the C API under native/; do not edit.\n");
        o.push_str("// Regenerate with scripts/dev.sh gen, which CI runs with --check.\n\n");
        let namespace = target.namespace;
        let _ = writeln!(o, "using System.Runtime.InteropServices;\n\nnamespace {namespace};\n");
        for (_, item) in &self.items {
            let Item::Enum(e) = item else { continue };
            if types.contains(&e.ident.to_string()) {
                self.write_enum(&mut o, e)?;
            }
        }
        let mut members = Vec::new();
        for (g, item) in &self.items {
            match item {
                Item::Struct(s) if types.contains(&s.ident.to_string()) => {
                    doc(&mut o, "", &docs(&s.attrs));
                    o.push_str("[StructLayout(LayoutKind.Sequential)]\n");
                    let _ = writeln!(o, "internal unsafe struct {}\n{{", s.ident);
                    for (i, field) in s.fields.iter().enumerate() {
                        o.push_str(if i > 0 { "\n" } else { "" });
                        doc(&mut o, "    ", &docs(&field.attrs));
                        let _ = writeln!(o, "    public {};", self.field(s, field, &mut BTreeSet::new())?);
                    }
                    o.push_str("}\n\n");
                }
                Item::Const(c) if *g == gate && matches!(c.vis, syn::Visibility::Public(_)) => {
                    let Some(ty) = integer(&c.ty) else { continue };
                    let value = self.eval(&c.expr).map_err(|e| format!("constant {}: {e}", c.ident))?;
                    // C# sizes (arrays, fixed buffers, spans, stackalloc) are int: a size that fits is one.
                    let int = ty == "nuint" && i32::try_from(value).is_ok();
                    let ty = if int { "int" } else { ty };
                    members.push((&c.attrs, format!("internal const {ty} {} = {value};", c.ident)));
                }
                _ => {}
            }
        }
        for (f, decl) in functions {
            // A call whose documentation says it reports through `errno` sets SetLastError, so that
            // callers read the error with Marshal.GetLastPInvokeError.
            let reports = docs(&f.attrs).iter().any(|l| l.contains("`errno`"));
            let errno = if reports { ", SetLastError = true" } else { "" };
            let import = format!("[LibraryImport({}{errno})]\n    {decl}", target.library);
            members.push((&f.attrs, import));
        }
        let _ = writeln!(o, "internal static unsafe partial class {}\n{{", target.class);
        for (i, (attrs, text)) in members.iter().enumerate() {
            o.push_str(if i > 0 { "\n" } else { "" });
            doc(&mut o, "    ", &docs(attrs));
            let _ = writeln!(o, "    {text}");
        }
        o.push_str("}\n");
        Ok(o)
    }

    fn write_enum(&self, o: &mut String, e: &syn::ItemEnum) -> Result<(), String> {
        let repr = repr(&e.attrs)
            .into_iter()
            .find_map(|w| if w == "C" { Some("int") } else { primitive(&w) });
        let repr = repr.ok_or(format!("enum {}: no #[repr(<integer>)] to give it a C size", e.ident))?;
        if e.variants.is_empty() || e.variants.iter().any(|v| !v.fields.is_empty()) {
            return Err(format!("enum {}: only enums of plain values cross a C API", e.ident));
        }
        doc(o, "", &docs(&e.attrs));
        let _ = writeln!(o, "internal enum {} : {repr}\n{{", e.ident);
        let mut next = 0i128;
        for v in &e.variants {
            if let Some((_, value)) = &v.discriminant {
                let what = |err| format!("{}::{}: {err}", e.ident, v.ident);
                next = self.eval(value).map_err(what)?;
            }
            doc(o, "    ", &docs(&v.attrs));
            let _ = writeln!(o, "    {} = {next},", v.ident);
            next += 1;
        }
        o.push_str("}\n\n");
        Ok(())
    }
}

/// The first line (1-based) where `a` and `b` differ, or `None` when they are equal.
pub fn first_difference(a: &str, b: &str) -> Option<usize> {
    let common = a.lines().count().min(b.lines().count());
    (a != b).then(|| a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(common) + 1)
}

/// `snake_case` as `PascalCase`, the C# spelling of a field.
fn pascal(name: &str) -> String {
    let words = name
        .split('_')
        .map(|w| w.split_at(w.chars().next().map_or(0, char::len_utf8)));
    words.map(|(first, rest)| first.to_ascii_uppercase() + rest).collect()
}

/// A Rust parameter name as a C# identifier (`out` becomes `@out`).
fn identifier(name: &str) -> String {
    const KEYWORDS: &str = "abstract as base bool break byte case catch char checked class const continue decimal \
        default delegate do double else enum event explicit extern false finally fixed float for foreach goto if \
        implicit in int interface internal is lock long namespace new null object operator out override params \
        private protected public readonly ref return sbyte sealed short sizeof stackalloc static string struct \
        switch this throw true try typeof uint ulong unchecked unsafe ushort using virtual void volatile while";
    let at = KEYWORDS.split_whitespace().any(|k| k == name).then_some("@");
    format!("{}{name}", at.unwrap_or_default())
}

/// Rust doc text as XML doc text: escaped, `code` as `<c>code</c>`, links as their text.
fn xml(line: &str) -> String {
    let escaped = line.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let text = escaped.replace("[`", "`").replace("`]", "`");
    if text.matches('`').count() % 2 == 1 {
        // A code span continued on another line: left as written.
        return text;
    }
    // Between backticks (every second part) is code.
    let tags = [("", ""), ("<c>", "</c>")].into_iter().cycle();
    text.split('`')
        .zip(tags)
        .map(|(p, (open, close))| format!("{open}{p}{close}"))
        .collect()
}

/// Writes Rust doc lines as an XML doc comment: the text before the first `# Heading` as the
/// summary, the sections from it on as remarks.
fn doc(o: &mut String, indent: &str, lines: &[String]) {
    let split = lines.iter().position(|l| l.starts_with("# ")).unwrap_or(lines.len());
    let trim = |part: &[String]| part.len() - part.iter().rev().take_while(|l| l.is_empty()).count();
    let summary = &lines[..trim(&lines[..split])];
    let remarks = &lines[split..split + trim(&lines[split..])];
    let block = |o: &mut String, tag: &str, body: &[String]| {
        let _ = writeln!(o, "{indent}/// <{tag}>");
        for l in body {
            let text = l
                .strip_prefix("# ")
                .map_or_else(|| xml(l), |heading| format!("{heading}:"));
            let _ = writeln!(o, "{indent}///{}{text}", if text.is_empty() { "" } else { " " });
        }
        let _ = writeln!(o, "{indent}/// </{tag}>");
    };
    match summary {
        [] => {}
        [one] => drop(writeln!(o, "{indent}/// <summary>{}</summary>", xml(one))),
        _ => block(o, "summary", summary),
    }
    if !remarks.is_empty() {
        block(o, "remarks", remarks);
    }
}

#[cfg(test)]
mod tests;
