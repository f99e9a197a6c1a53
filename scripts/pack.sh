#!/usr/bin/env bash
# Builds the native library in release for every runtime the package ships (RUNTIMES: NuGet RID,
# Rust target), staged as target/nuget/native/<RID>/libotel_thread_ctx.so, and packs
# target/nuget/<PackageId>.<version>.nupkg (Cargo.toml's version) for OtelThreadContext and
# OtelThreadContext.OpenTelemetry. Fails unless each package holds what it should.
set -euo pipefail
. "$(dirname "$0")/common.sh"
. scripts/cross-env.sh

RUNTIMES=(
  "linux-x64 x86_64-unknown-linux-gnu"
  "linux-arm64 aarch64-unknown-linux-gnu"
  "linux-musl-x64 x86_64-unknown-linux-musl"
)
out="$root/target/nuget"
rm -rf "$out/native"
for runtime in "${RUNTIMES[@]}"; do
  read -r rid triple <<<"$runtime"
  if [ "$triple" = "$(host_triple)" ]; then
    nice cargo build --release --quiet --lib # the build the tests use (target/release)
    lib="$root/target/release/libotel_thread_ctx.so"
  elif [ "$triple" = x86_64-unknown-linux-musl ]; then
    lib="$(./scripts/build-musl.sh --release | tail -n1)"
  else
    (cross_env "$triple" && nice cargo build --release --quiet --lib --target "$triple")
    lib="$root/target/$triple/release/libotel_thread_ctx.so"
  fi
  mkdir -p "$out/native/$rid"
  cp "$lib" "$out/native/$rid/libotel_thread_ctx.so"
  echo "pack: $rid <- $lib"
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
