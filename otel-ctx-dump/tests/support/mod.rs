//! Shared by the end-to-end tests: building C targets, running them under a kill-on-drop guard,
//! and a small JSON parser for the lines targets and `otel-ctx-dump --json` print.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

/// The otel-ctx-dump binary cargo built for these tests.
pub fn dump_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_otel-ctx-dump"))
}

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// The directory holding libotel_thread_ctx.so: the same profile directory as the binary.
/// Built once per test process (a no-op when `cargo test --workspace` already built it).
pub fn library_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = dump_binary().parent().expect("profile dir").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", "otel-thread-ctx", "--lib"])
                .current_dir(workspace_root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building libotel_thread_ctx.so failed");
            assert!(
                dir.join("libotel_thread_ctx.so").exists(),
                "no libotel_thread_ctx.so in {}",
                dir.display()
            );
            dir
        })
        .clone()
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// gcc with the given arguments, in `dir`.
pub fn gcc(dir: &Path, args: &[&str]) {
    run(Command::new("gcc").current_dir(dir).args(args));
}

/// Path of a C source under tests/c.
pub fn c_source(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A child process killed and reaped when dropped, whatever the test's outcome.
pub struct Target {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Target {
    pub fn spawn(cmd: &mut Command) -> Target {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Target { child, stdin, lines }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next stdout line, within `timeout`.
    pub fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("target {} printed no line: {e}", self.pid()))
    }

    /// Lines up to and including the first one for which `last` is true.
    pub fn lines_until(&self, timeout: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line(timeout);
            let done = last(&l);
            v.push(l);
            if done {
                return v;
            }
        }
    }

    pub fn send_line(&mut self, s: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{s}").expect("write to target");
        stdin.flush().expect("flush");
    }

    /// Closes stdin and waits for a normal exit, returning the exit code.
    pub fn finish(&mut self, timeout: Duration) -> i32 {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or_else(|| panic!("target died: {status:?}"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "target {} did not exit",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The state letters of every thread of `pid` (`t` = stopped by a tracer, `T` = stopped).
pub fn thread_states(pid: i32) -> Vec<(i32, char)> {
    otel_ctx_dump::inspect::thread_ids(pid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|tid| Some((tid, otel_ctx_dump::inspect::thread_state(pid, tid)?)))
        .collect()
}

/// Runs otel-ctx-dump with `args`; returns (exit code, stdout, stderr).
pub fn dump(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(dump_binary())
        .args(args)
        .output()
        .expect("run otel-ctx-dump");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or(&Json::Null),
            _ => &Json::Null,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => &[],
        }
    }
    pub fn obj(&self) -> &[(String, Json)] {
        match self {
            Json::Obj(o) => o,
            _ => &[],
        }
    }

    /// Parses a complete JSON text; `Err` names the byte offset of the problem.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            b: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing bytes at {}", p.i));
        }
        Ok(v)
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.b[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err(&format!("expected {lit}"))
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'n') => self.eat("null").map(|_| Json::Null),
            Some(b't') => self.eat("true").map(|_| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|_| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(items));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    items.push((k, self.value()?));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(items));
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.b.len() && matches!(self.b[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.i]).expect("ascii");
                s.parse().map(Json::Num).or_else(|_| self.err("bad number"))
            }
            _ => self.err("expected a value"),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("bad escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = std::str::from_utf8(self.b.get(self.i..self.i + 4).ok_or("short \\u")?)
                                .map_err(|e| e.to_string())?;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            self.i += 4;
                            out.push(char::from_u32(code).ok_or("surrogate")?);
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                c if c < 0x20 => return self.err("raw control character in string"),
                _ => {
                    // Copy one UTF-8 character.
                    let start = self.i - 1;
                    let len = match c {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let s = std::str::from_utf8(self.b.get(start..start + len).ok_or("short utf-8")?)
                        .map_err(|e| e.to_string())?;
                    out.push_str(s);
                    self.i = start + len;
                }
            }
        }
    }
}

/// Builds `tests/c/<source>` into `dir/<out>`, linked against libotel_thread_ctx.so.
pub fn gcc_linked(dir: &Path, source: &str, out: &str) -> PathBuf {
    let lib = library_dir();
    let include = format!("-I{}", workspace_root().join("include").display());
    let libdir = format!("-L{}", lib.display());
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    gcc(
        dir,
        &[
            "-std=gnu11",
            "-O2",
            "-pthread",
            &include,
            "-o",
            out,
            &c_source(source),
            &libdir,
            &rpath,
            "-lotel_thread_ctx",
        ],
    );
    dir.join(out)
}

/// Waits until `pid`'s thread `tid` is in one of `states`, within `timeout`.
pub fn wait_for_state(pid: i32, tid: i32, states: &[char], timeout: Duration) -> char {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = otel_ctx_dump::inspect::thread_state(pid, tid).unwrap_or('?');
        if states.contains(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "thread {tid} of {pid} stayed in state {s}, not {states:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
