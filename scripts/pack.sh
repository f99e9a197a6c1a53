#!/usr/bin/env bash
# Packs the NuGet packages into target/nuget/: OtelThreadContext (with the release native library
# under runtimes/linux-x64/native/) and OtelThreadContext.OpenTelemetry (depends on it and on
# OpenTelemetry 1.20.x). Checks that each package holds what it should; exits non-zero otherwise.
#   ./scripts/pack.sh        OTEL_NATIVE_LIBRARY=/path/to.so packs another build of the library.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

lib="${OTEL_NATIVE_LIBRARY:-}"
if [ -z "$lib" ]; then
  cargo build --release --quiet --lib
  lib="$root/target/release/libotel_thread_ctx.so"
fi
[ -f "$lib" ] || { echo "pack: native library $lib not found" >&2; exit 1; }

out="$root/target/nuget"
mkdir -p "$out"
for project in OtelThreadContext OtelThreadContext.OpenTelemetry; do
  dotnet pack "dotnet/$project/$project.csproj" -c Release -nologo -v q -o "$out" \
    --artifacts-path "$root/target/pack-build" -p:OtelNativeLibrary="$lib"
done

version="$(sed -n '/^\[workspace\.package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -1)"
core="$out/OtelThreadContext.$version.nupkg"
sdk="$out/OtelThreadContext.OpenTelemetry.$version.nupkg"
for f in "$core" "$sdk"; do [ -f "$f" ] || { echo "pack: $f was not written" >&2; exit 1; }; done
listing="$(unzip -l "$core")"
grep -q 'runtimes/linux-x64/native/libotel_thread_ctx.so' <<<"$listing" \
  || { echo "pack: $core lacks the native library" >&2; exit 1; }
nuspec="$(unzip -p "$sdk" OtelThreadContext.OpenTelemetry.nuspec)"
for dep in "id=\"OtelThreadContext\" version=\"$version\"" 'id="OpenTelemetry" version="1.20.'; do
  grep -q "$dep" <<<"$nuspec" || { echo "pack: $sdk does not depend on $dep" >&2; exit 1; }
done
echo "pack: wrote $core and $sdk"
