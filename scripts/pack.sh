#!/usr/bin/env bash
# Builds the native library in release for every runtime the package ships (RUNTIMES: NuGet RID,
# Rust target), staged as target/nuget/native/<RID>/libotel_thread_ctx.so, and packs
# target/nuget/<PackageId>.<version>.nupkg (Cargo.toml's version) for OtelThreadContext and
# OtelThreadContext.OpenTelemetry. Also writes otel-ctx-dump as static musl executables, which
# run on any Linux host of their architecture (glibc or musl): target/dist/otel-ctx-dump-linux-x86_64
# and target/dist/otel-ctx-dump-linux-aarch64. Fails unless each output is what it should be.
set -euo pipefail
. "$(dirname "$0")/common.sh"

RUNTIMES=(
  "linux-x64 x86_64-unknown-linux-gnu"
  "linux-arm64 aarch64-unknown-linux-gnu"
  "linux-musl-x64 x86_64-unknown-linux-musl"
  "linux-musl-arm64 aarch64-unknown-linux-musl"
)
out="$root/target/nuget"
rm -rf "$out/native"
for runtime in "${RUNTIMES[@]}"; do
  read -r rid triple <<<"$runtime"
  if [ "$triple" = "$(host_triple)" ]; then
    nice cargo build --release --quiet --lib # the build the tests use (target/release)
    lib="$root/target/release/libotel_thread_ctx.so"
  elif [[ "$triple" == *-musl ]]; then
    lib="$(./scripts/build-musl.sh --target "$triple" --release | tail -n1)"
  else
    (cross_env "$triple" && nice cargo build --release --quiet --lib --target "$triple")
    lib="$root/target/$triple/release/libotel_thread_ctx.so"
  fi
  # The library is the runtime's: its machine, and musl's libc.so or glibc's libc.so.6.
  machine="$(readelf -hW "$lib" | sed -n 's/^ *Machine: *//p')"
  needs="$(readelf -dW "$lib" | sed -n 's/.*(NEEDED).*\[\(libc\.so[.0-9]*\)\]/\1/p')"
  case "$triple" in
    x86_64-*) [ "$machine" = "Advanced Micro Devices X86-64" ] || die "$lib is a $machine ELF, not x86-64" ;;
    aarch64-*) [ "$machine" = AArch64 ] || die "$lib is a $machine ELF, not AArch64" ;;
  esac
  case "$triple" in
    *-musl) [ "$needs" = libc.so ] || die "$lib needs '$needs', not musl's libc.so" ;;
    *) [ "$needs" = libc.so.6 ] || die "$lib needs '$needs', not glibc's libc.so.6" ;;
  esac
  mkdir -p "$out/native/$rid"
  cp "$lib" "$out/native/$rid/libotel_thread_ctx.so"
  echo "pack: $rid <- $lib"
done

# otel-ctx-dump for any host: static, without PT_INTERP or NEEDED (scripts/test-dist.sh runs them).
dist="$root/target/dist"
mkdir -p "$dist"
for arch in x86_64 aarch64; do
  exe="$(./scripts/build-musl.sh --target "$arch-unknown-linux-musl" --release --otel-ctx-dump | tail -n1)"
  # Read whole first: under pipefail `readelf | grep -q` fails when grep stops early.
  segments="$(readelf -lW "$exe")" && dynamic="$(readelf -dW "$exe")" || die "cannot read $exe"
  [[ "$segments" != *INTERP* ]] || die "$exe has a PT_INTERP: it is not static"
  [[ "$dynamic" != *"(NEEDED)"* ]] || die "$exe needs shared libraries: it is not static"
  cp "$exe" "$dist/otel-ctx-dump-linux-$arch"
  echo "pack: $dist/otel-ctx-dump-linux-$arch <- $exe"
done

for project in OtelThreadContext OtelThreadContext.OpenTelemetry; do
  dotnet pack "dotnet/$project/$project.csproj" -c Release -o "$out" --nologo -v q \
    --artifacts-path "$root/target/pack-build" -p:OtelNativeStage="$out/native"
done

version="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -1)"
core="$out/OtelThreadContext.$version.nupkg"
sdk="$out/OtelThreadContext.OpenTelemetry.$version.nupkg"
listing="$(unzip -l "$core")" || die "$core was not written"
for runtime in "${RUNTIMES[@]}"; do
  grep -q "runtimes/${runtime%% *}/native/libotel_thread_ctx.so" <<<"$listing" ||
    die "$core lacks runtimes/${runtime%% *}/native/libotel_thread_ctx.so"
done
nuspec="$(unzip -p "$sdk" OtelThreadContext.OpenTelemetry.nuspec)" || die "$sdk was not written"
for dep in "id=\"OtelThreadContext\" version=\"$version\"" 'id="OpenTelemetry" version="1.20.'; do
  grep -q "$dep" <<<"$nuspec" || die "$sdk does not depend on $dep"
done
echo "pack: wrote $core and $sdk"
