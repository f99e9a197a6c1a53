//! Command-line parsing (clap). `--help` prints [`USAGE`], which also documents the exit codes.

use std::time::Duration;

pub const USAGE: &str = "\
usage: otel-ctx-dump [--json] [--thread TID] [--watch SECONDS [--samples N]] PID
       otel-ctx-dump check [--json] [--duration SECONDS] PID

Reads process PID's OpenTelemetry process context and each thread's span context
(the otel_thread_ctx_v1 TLS slot), the way the OpenTelemetry eBPF profiler does.
Each thread is stopped with ptrace only for the few reads it takes.

options:
  --json             one JSON object (with --watch: one JSON line per change)
  --thread TID       read only thread TID
  --watch SECONDS    sample every SECONDS (decimals allowed) and print one line per change,
                     until Ctrl-C or the process exits
  --samples N        with --watch: stop after N samples
  -h, --help         this text
  -V, --version      the version

exit codes:
  0    process context and a module exporting otel_thread_ctx_v1 found
  1    other failure (e.g. PID is a kernel thread)
  2    bad command line
  3    no such process, or a zombie
  4    permission denied: run as the target's user (with ptrace allowed by
       /proc/sys/kernel/yama/ptrace_scope) or with CAP_SYS_PTRACE (e.g. as root);
       or another tracer holds the threads (the message names it)
  5    no module exports otel_thread_ctx_v1 (the process context, if any, is still shown)
  6    process context absent or invalid (threads are still shown)
  130  interrupted (every thread was released first)

otel-ctx-dump check PID: one line per rule of OTEP 4947 and OTEP 4719 a writer can break,
with the clause, the result (pass, warn, fail; skip when a rule it needs failed) and the
evidence. --duration SECONDS also watches that long for updates of the process context.
It exits 0 when every rule passes, 7 with warnings only, 8 with failures (or 1-4, 130 as
above when the process cannot be read).
";

#[derive(clap::Parser, Clone, Debug, PartialEq)]
#[command(name = "otel-ctx-dump", version, override_help = USAGE)]
pub struct Options {
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "TID", value_parser = positive::<i32>)]
    pub thread: Option<i32>,
    #[arg(long, value_name = "SECONDS", value_parser = interval)]
    pub watch: Option<Duration>,
    #[arg(long, value_name = "N", requires = "watch", value_parser = positive::<u64>)]
    pub samples: Option<u64>,
    #[arg(value_name = "PID", value_parser = positive::<i32>)]
    pub pid: i32,
}

#[derive(clap::Parser, Clone, Debug, PartialEq)]
#[command(name = "otel-ctx-dump check", override_help = USAGE)]
pub struct CheckOptions {
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "SECONDS", value_parser = interval)]
    pub duration: Option<Duration>,
    #[arg(value_name = "PID", value_parser = positive::<i32>)]
    pub pid: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Dump(Options),
    Check(CheckOptions),
}

/// A PID, TID or sample count.
fn positive<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Result<T, String> {
    let n = s.parse().ok().filter(|n| *n > T::default());
    n.ok_or_else(|| format!("must be a positive integer, got {s:?}"))
}

fn interval(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("takes a number of seconds > 0, got {s:?}")),
    }
}

/// Parses the arguments after the program name: `check ...` or the dump's options.
pub fn parse_command<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("check") {
        args.next();
        return parse_as::<CheckOptions>(args).map(Command::Check);
    }
    parse_as(args).map(Command::Dump)
}

/// `--help` and `--version` print and exit here; the error is clap's message, one line.
fn parse_as<T: clap::Parser>(args: impl IntoIterator<Item = String>) -> Result<T, String> {
    use clap::error::ErrorKind;
    let e = match T::try_parse_from(std::iter::once("otel-ctx-dump".to_owned()).chain(args)) {
        Ok(o) => return Ok(o),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => e.to_string(),
    };
    // clap's message without its own usage footer, on one line.
    let message: Vec<&str> = e
        .lines()
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    Err(message.join(" ").trim_start_matches("error: ").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Options, String> {
        parse_as(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_options() {
        assert_eq!(
            p(&["--json", "12", "--thread", "13"]),
            Ok(Options {
                pid: 12,
                json: true,
                thread: Some(13),
                watch: None,
                samples: None
            })
        );
        let o = p(&["--watch", "0.5", "--samples", "3", "9"]).unwrap();
        assert_eq!(o.watch, Some(Duration::from_millis(500)));
        assert_eq!(o.samples, Some(3));
    }

    #[test]
    fn parses_check() {
        let c = |args: &[&str]| parse_command(args.iter().map(|s| s.to_string()));
        assert_eq!(
            c(&["check", "--json", "--duration", "2", "7"]),
            Ok(Command::Check(CheckOptions {
                json: true,
                duration: Some(Duration::from_secs(2)),
                pid: 7
            }))
        );
        assert!(matches!(c(&["7"]), Ok(Command::Dump(_))));
        assert!(c(&["check", "--watch", "1", "7"]).is_err());
        assert!(c(&["check"]).is_err());
    }

    #[test]
    fn rejects_bad_command_lines() {
        for bad in [
            &[][..],
            &["abc"],
            &["0"],
            &["-5"],
            &["1", "2"],
            &["--thread"],
            &["--thread", "x", "1"],
            &["--watch", "0", "1"],
            &["--watch", "nan", "1"],
            &["--samples", "2", "1"],
            &["--bogus", "1"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
    }
}
