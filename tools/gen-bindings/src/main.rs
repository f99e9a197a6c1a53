//! `gen-bindings`: writes the C# P/Invoke declarations of a crate's C API (see the library), or with
//! `--check` fails when a committed file differs from what it would write. scripts/dev.sh gen runs it.

use gen_bindings::{first_difference, Api, Gate, Target};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: gen-bindings --root <lib.rs> --namespace <ns> --class <class> --library <C# expression> \
    --out <file> [--test-feature <cargo feature> --test-namespace <ns> --test-class <class> --test-library <C# expression> \
    --test-out <file>] [--check]\n\
    Writes the crate's C API as C# LibraryImport declarations, the items behind the test feature to the --test-* file;\n\
    with --check, writes nothing and fails when a file differs from what would be written.";
const OPTIONS: &str = "root namespace class library out test-feature test-namespace test-class test-library test-out";

/// Writes or checks the files `options` name; `Ok(false)` when one is stale.
fn run(options: &HashMap<&str, String>, check: bool) -> Result<bool, String> {
    let get = |key: &str| options.get(key).ok_or(format!("--{key} is missing\n{USAGE}"));
    let test_feature = options.get("test-feature").map(String::as_str);
    let api = Api::read(Path::new(get("root")?), test_feature)?;
    let files = if test_feature.is_some() { 2 } else { 1 };
    let mut current = true;
    for (prefix, gate) in [("", Gate::Shipped), ("test-", Gate::Test)].into_iter().take(files) {
        let get = |key: &str| get(&format!("{prefix}{key}"));
        let target = Target {
            namespace: get("namespace")?,
            class: get("class")?,
            library: get("library")?,
        };
        let (path, text) = (get("out")?, api.render(gate, &target)?);
        if !check {
            std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
        } else if let Some(line) = first_difference(&std::fs::read_to_string(path).unwrap_or_default(), &text) {
            eprintln!("gen-bindings: {path} is stale (first difference at line {line}): run scripts/dev.sh gen and commit the result");
            current = false;
        }
    }
    Ok(current)
}

fn main() -> ExitCode {
    let (mut options, mut check, mut args) = (HashMap::new(), false, std::env::args().skip(1));
    while let Some(arg) = args.next() {
        if arg == "--check" {
            check = true;
            continue;
        }
        let key = OPTIONS.split(' ').find(|o| arg.strip_prefix("--") == Some(o));
        let Some((key, value)) = key.zip(args.next()) else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        options.insert(key, value);
    }
    match run(&options, check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gen-bindings: {e}");
            ExitCode::from(2)
        }
    }
}
