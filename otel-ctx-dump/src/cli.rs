//! Command-line parsing (clap). `--help` prints [`USAGE`], which also documents the exit codes.

use std::time::Duration;

pub const USAGE: &str = "\
usage: otel-ctx-dump [--json] [--thread TID] [--watch SECONDS [--samples N]] PID

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
";

#[derive(clap::Parser, Clone, Debug, PartialEq)]
#[command(name = "otel-ctx-dump", version, override_help = USAGE)]
pub struct Options {
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_name = "TID", value_parser = positive_id)]
    pub thread: Option<i32>,
    #[arg(long, value_name = "SECONDS", value_parser = interval)]
    pub watch: Option<Duration>,
    #[arg(long, value_name = "N", requires = "watch", value_parser = sample_count)]
    pub samples: Option<u64>,
    #[arg(value_name = "PID", value_parser = positive_id)]
    pub pid: i32,
}

fn positive_id(s: &str) -> Result<i32, String> {
    let id = s.parse().ok().filter(|&n| n > 0);
    id.ok_or_else(|| format!("must be a positive integer, got {s:?}"))
}

fn interval(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("takes a number of seconds > 0, got {s:?}")),
    }
}

fn sample_count(s: &str) -> Result<u64, String> {
    let n = s.parse().ok().filter(|&n| n > 0);
    n.ok_or_else(|| format!("takes a positive integer, got {s:?}"))
}

/// Parses the arguments after the program name: `--help` and `--version` print and exit here,
/// the error is clap's message, one line.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    use clap::{error::ErrorKind, Parser};
    let e = match Options::try_parse_from(std::iter::once("otel-ctx-dump".to_owned()).chain(args)) {
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
        parse(args.iter().map(|s| s.to_string()))
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
