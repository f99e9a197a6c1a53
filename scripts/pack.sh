#!/usr/bin/env bash
# Packs target/nuget/<PackageId>.<version>.nupkg and .snupkg (the managed symbols) for
# OtelThreadContext and OtelThreadContext.OpenTelemetry (Cargo.toml's version), after installing
# what it needs (scripts/setup.sh) and building the native library in release for every runtime
# of RUNTIMES (NuGet RID, Rust target; the package descriptions list the same RIDs). Each library
# ships without its DWARF, linked (.gnu_debuglink) to target/dist/debug/<RID>/libotel_thread_ctx.so.debug.
# Also writes otel-ctx-dump as static musl executables, which run on any Linux host of their
# architecture (glibc or musl): target/dist/otel-ctx-dump-linux-x86_64 and -aarch64, debug files
# likewise. Fails unless each library needs its runtime's C library and the packages hold them all.
set -euo pipefail
. "$(dirname "$0")/common.sh"
setup

RUNTIMES=(
  "linux-x64 x86_64-unknown-linux-gnu"
  "linux-arm64 aarch64-unknown-linux-gnu"
  "linux-musl-x64 x86_64-unknown-linux-musl"
  "linux-musl-arm64 aarch64-unknown-linux-musl"
)
out="$root/target/nuget" dist="$root/target/dist"
rm -rf "$out/native" "$dist/debug"

# Copies ELF file $1 to $2 without its DWARF, which goes to target/dist/debug/$3.debug.
ship() {
  local objcopy=objcopy debug="$dist/debug/$3.debug"
  [[ "$(readelf -hW "$1")" != *AArch64* ]] || objcopy=aarch64-linux-gnu-objcopy
  mkdir -p "$(dirname "$2")" "$(dirname "$debug")"
  "$objcopy" --only-keep-debug "$1" "$debug"
  "$objcopy" --strip-debug --add-gnu-debuglink="$debug" "$1" "$2"
  echo "pack: $2 <- $1 (debug info: $debug)"
}

rids=() host="$(rustc -vV | sed -n 's/^host: //p')"
for runtime in "${RUNTIMES[@]}"; do
  read -r rid triple <<<"$runtime"
  rids+=("$rid")
  if [ "$triple" = "$host" ]; then
    nice cargo build --release --quiet --lib # the build the tests use (target/release)
    lib="$root/target/release/libotel_thread_ctx.so"
  elif [[ "$triple" == *-musl ]]; then
    lib="$(./scripts/build-musl.sh --target "$triple" --release | tail -n1)"
  else
    (cross_env && nice cargo build --release --quiet --lib --target "$triple")
    lib="$root/target/$triple/release/libotel_thread_ctx.so"
  fi
  # musl's libc.so or glibc's libc.so.6 (the machine of each: PackageTests).
  needs="$(readelf -dW "$lib" | sed -n 's/.*(NEEDED).*\[\(libc\.so[.0-9]*\)\]/\1/p')"
  [[ "$triple" == *-musl && "$needs" == libc.so || "$triple" != *-musl && "$needs" == libc.so.6 ]] ||
    die "$lib needs '$needs', not its runtime's C library"
  ship "$lib" "$out/native/$rid/libotel_thread_ctx.so" "$rid/libotel_thread_ctx.so"
done

for arch in x86_64 aarch64; do
  exe="$(./scripts/build-musl.sh --target "$arch-unknown-linux-musl" --release --otel-ctx-dump | tail -n1)"
  ship "$exe" "$dist/otel-ctx-dump-linux-$arch" "otel-ctx-dump-linux-$arch"
done

for project in OtelThreadContext OtelThreadContext.OpenTelemetry; do
  dotnet pack "dotnet/$project/$project.csproj" -c Release -o "$out" --nologo -v q \
    --artifacts-path "$root/target/pack-build" -p:OtelNativeStage="$out/native" -p:OtelRuntimes="${rids[*]}"
done

version="$(cargo_version)"
listing="$(unzip -l "$out/OtelThreadContext.$version.nupkg")" || die "OtelThreadContext.$version.nupkg was not written"
for rid in "${rids[@]}"; do
  [[ "$listing" == *"runtimes/$rid/native/libotel_thread_ctx.so"* ]] || die "the package lacks runtimes/$rid"
done
echo "pack: wrote $out/OtelThreadContext{,.OpenTelemetry}.$version.{nupkg,snupkg}"
