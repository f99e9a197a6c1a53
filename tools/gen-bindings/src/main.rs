//! `gen-bindings`: writes the C# P/Invoke declarations of a crate's C API (see the library's
//! documentation for what is read), or with `--check` fails when a committed file differs from
//! what it would write. scripts/dev.sh gen runs it.

use clap::Parser;
use gen_bindings::{Api, Gate, Target};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Generates C# LibraryImport declarations from a Rust crate's C API")]
struct Args {
    /// The crate's root file, e.g. native/lib.rs.
    #[arg(long)]
    root: PathBuf,
    /// Namespace of the shipped declarations.
    #[arg(long)]
    namespace: String,
    /// Class holding the shipped methods and constants.
    #[arg(long)]
    class: String,
    /// C# expression naming the native library in [LibraryImport].
    #[arg(long)]
    library: String,
    /// Where the shipped declarations go.
    #[arg(long)]
    out: PathBuf,
    /// Cargo feature whose items are test hooks, declared in a file of their own.
    #[arg(long, requires_all = ["test_namespace", "test_class", "test_library", "test_out"])]
    test_feature: Option<String>,
    #[arg(long)]
    test_namespace: Option<String>,
    #[arg(long)]
    test_class: Option<String>,
    #[arg(long)]
    test_library: Option<String>,
    #[arg(long)]
    test_out: Option<PathBuf>,
    /// Write nothing; fail if a file differs from what would be written.
    #[arg(long)]
    check: bool,
}

fn run(args: &Args) -> Result<bool, String> {
    let api = Api::read(&args.root, args.test_feature.as_deref())?;
    for note in &api.notes {
        eprintln!("gen-bindings: {note}");
    }
    let shipped = Target {
        namespace: &args.namespace,
        class: &args.class,
        library: &args.library,
    };
    let mut outputs = vec![(args.out.clone(), api.render(Gate::Shipped, &shipped)?)];
    if let (Some(_), Some(namespace), Some(class), Some(library), Some(out)) = (
        &args.test_feature,
        &args.test_namespace,
        &args.test_class,
        &args.test_library,
        &args.test_out,
    ) {
        let test = Target {
            namespace,
            class,
            library,
        };
        outputs.push((out.clone(), api.render(Gate::Test, &test)?));
    }
    let mut current = true;
    for (path, text) in outputs {
        if !args.check {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = gen_bindings::first_difference(&committed, &text) {
            eprintln!(
                "gen-bindings: {} is stale (first difference at line {line}): run scripts/dev.sh gen and commit the result",
                path.display()
            );
            current = false;
        }
    }
    Ok(current)
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gen-bindings: {e}");
            ExitCode::from(2)
        }
    }
}
