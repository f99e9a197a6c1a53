#!/usr/bin/env bash
# Builds the native library in release for every runtime the package ships and packs the .NET
# packages into target/nuget/<PackageId>.<version>.nupkg (the version is Cargo.toml's):
# OtelThreadContext (runtimes/<RID>/native/libotel_thread_ctx.so for each RID) and
# OtelThreadContext.OpenTelemetry (depends on it and on OpenTelemetry 1.20.x). Checks that each
# package holds what it should; exits non-zero otherwise.
#
#   ./scripts/pack.sh
#
# A runtime is one line of RUNTIMES (NuGet RID, Rust target); a package is one line of PACKAGES.
# The native libraries are staged as target/nuget/native/<RID>/libotel_thread_ctx.so and packed
# as runtimes/<RID>/native/libotel_thread_ctx.so (OtelThreadContext.csproj, OtelNativeStage).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/cross-env.sh
. scripts/cross-env.sh

RUNTIMES=(
  "linux-x64 x86_64-unknown-linux-gnu"
  "linux-arm64 aarch64-unknown-linux-gnu"
  "linux-musl-x64 x86_64-unknown-linux-musl"
)
PACKAGES=(
  OtelThreadContext
  OtelThreadContext.OpenTelemetry
)

out="$root/target/nuget"
stage="$out/native"
rm -rf "$stage"
host="$(host_triple)"
for runtime in "${RUNTIMES[@]}"; do
  read -r rid triple <<<"$runtime"
  if [ "$triple" = "$host" ]; then
    # The host build is the one the tests use (target/release).
    nice cargo build --release --quiet --lib
    lib="$root/target/release/libotel_thread_ctx.so"
  elif [ "$triple" = x86_64-unknown-linux-musl ]; then
    lib="$(./scripts/build-musl.sh --release | tail -n1)"
    [[ "$lib" = /* ]] || lib="$root/$lib"
  else
    (cross_env "$triple" && nice cargo build --release --quiet --lib --target "$triple")
    lib="$root/target/$triple/release/libotel_thread_ctx.so"
  fi
  mkdir -p "$stage/$rid"
  cp "$lib" "$stage/$rid/libotel_thread_ctx.so"
  echo "pack: $rid <- $lib"
done

for project in "${PACKAGES[@]}"; do
  dotnet pack "dotnet/$project/$project.csproj" -c Release -o "$out" --nologo -v q \
    --artifacts-path "$root/target/pack-build" -p:OtelNativeStage="$stage"
done

version="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -1)"
core="$out/OtelThreadContext.$version.nupkg"
sdk="$out/OtelThreadContext.OpenTelemetry.$version.nupkg"
for f in "$core" "$sdk"; do [ -f "$f" ] || { echo "pack: $f was not written" >&2; exit 1; }; done
listing="$(unzip -l "$core")"
for runtime in "${RUNTIMES[@]}"; do
  read -r rid _ <<<"$runtime"
  grep -q "runtimes/$rid/native/libotel_thread_ctx.so" <<<"$listing" \
    || { echo "pack: $core lacks runtimes/$rid/native/libotel_thread_ctx.so" >&2; exit 1; }
done
nuspec="$(unzip -p "$sdk" OtelThreadContext.OpenTelemetry.nuspec)"
for dep in "id=\"OtelThreadContext\" version=\"$version\"" 'id="OpenTelemetry" version="1.20.'; do
  grep -q "$dep" <<<"$nuspec" || { echo "pack: $sdk does not depend on $dep" >&2; exit 1; }
done
echo "pack: wrote $core and $sdk"
