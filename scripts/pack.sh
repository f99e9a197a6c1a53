#!/usr/bin/env bash
# Builds the native library in release for every runtime the package ships and packs the .NET
# packages into target/nuget/<PackageId>.<version>.nupkg (the version is Cargo.toml's).
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
)
PACKAGES=(
  dotnet/OtelThreadContext/OtelThreadContext.csproj
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
  else
    (cross_env "$triple" && nice cargo build --release --quiet --lib --target "$triple")
    lib="$root/target/$triple/release/libotel_thread_ctx.so"
  fi
  mkdir -p "$stage/$rid"
  cp "$lib" "$stage/$rid/libotel_thread_ctx.so"
  echo "pack: $rid <- $lib"
done

for project in "${PACKAGES[@]}"; do
  dotnet pack "$project" -c Release -o "$out" -p:OtelNativeStage="$stage" --nologo -v q
done
ls -1 "$out"/*.nupkg
