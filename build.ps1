#!/usr/bin/env pwsh
#Requires -Version 7.2
# earshot build script (PowerShell 7.2+; local builds on Linux, Docker builds anywhere).
#
#   ./build.ps1                      local CMake build (RelWithDebInfo) into ./build
#   ./build.ps1 -Release             local optimised build (Release)
#   ./build.ps1 -Test                local build with warnings as errors and the tests, then every test
#   ./build.ps1 -Run                 local build, then run earshot on the stock config
#   ./build.ps1 -Docker              build the container image earshot:<Tag> (with podman
#                                    where docker is missing or its daemon does not answer)
#   ./build.ps1 -Docker -Run         ... and run it, publishing port 8080
#   ./build.ps1 -Docker -Platform linux/arm64
#   ./build.ps1 -Docker -MultiArch   linux/amd64 + linux/arm64 with buildx (kept in the build cache;
#                                    with podman: a local manifest list earshot:<Tag>)
#   ./build.ps1 -Docker -MultiArch -Push -Registry 123456789.dkr.ecr.eu-west-1.amazonaws.com/earshot -Tag v1.0
#
# Local builds need cmake, a C compiler and the libraries listed in README.md
# (on Debian/Ubuntu, ./build.sh deps installs them). Docker builds need only Docker, or
# podman (docs/deploy.md, "Without Docker: podman").
[CmdletBinding()]
param(
    [switch]$Docker,
    [switch]$Run,
    [switch]$Test,
    [switch]$Release,
    [string]$Platform = "",
    [switch]$MultiArch,
    [switch]$Push,
    [string]$Registry = "",
    [string]$Tag = "latest"
)

$ErrorActionPreference = "Stop"
# Native commands report through $LASTEXITCODE, checked after each step.
$PSNativeCommandUseErrorActionPreference = $false

function Invoke-Step([string]$What, [scriptblock]$Block) {
    Write-Host "==> $What" -ForegroundColor Cyan
    & $Block
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

function Invoke-LocalBuild {
    $type = if ($Release) { "Release" } else { "RelWithDebInfo" }
    $onOff = if ($Test) { "ON" } else { "OFF" }
    Invoke-Step "configure ($type)" {
        cmake -S . -B build "-DCMAKE_BUILD_TYPE=$type" "-DEARSHOT_WERROR=$onOff" "-DEARSHOT_BUILD_TESTS=$onOff"
    }
    Invoke-Step "build" { cmake --build build --parallel }
    if ($Test) {
        Push-Location build
        try { Invoke-Step "test" { ctest --output-on-failure --parallel 2 --no-tests=error } }
        finally { Pop-Location }
    }
    if ($Run) {
        Invoke-Step "run earshot" { ./build/earshot }
    }
}

# docker when its daemon answers; podman when docker is missing or has no
# daemon (a client-only docker install) and podman is there.
function Get-ContainerEngine {
    $docker = Get-Command docker -CommandType Application -ErrorAction SilentlyContinue
    $podman = Get-Command podman -CommandType Application -ErrorAction SilentlyContinue
    if ($docker) {
        if (-not $podman) { return "docker" }
        docker info *> $null
        if ($LASTEXITCODE -eq 0) { return "docker" }
        Write-Host "docker does not answer (no daemon?): using podman" -ForegroundColor Yellow
        return "podman"
    }
    if ($podman) { return "podman" }
    throw "-Docker needs docker or podman, and neither is on PATH"
}

function Invoke-DockerBuild {
    $image = if ($Registry) { "$($Registry.TrimEnd('/')):$Tag" } else { "earshot:$Tag" }
    $engine = Get-ContainerEngine
    if ($engine -eq "podman") { Invoke-PodmanBuild $image; return }
    if ($MultiArch) {
        $platforms = if ($Platform) { $Platform } else { "linux/amd64,linux/arm64" }
        $builder = "earshot-multiarch"
        docker buildx inspect $builder *> $null
        if ($LASTEXITCODE -ne 0) {
            Invoke-Step "create buildx builder $builder" { docker buildx create --name $builder --driver docker-container }
        }
        # Without -Push the result stays in the build cache (a multi-platform
        # image cannot be loaded into the local image store).
        $output = if ($Push) { "--push" } else { "--output=type=cacheonly" }
        Invoke-Step "docker buildx build $image ($platforms)" {
            docker buildx build --builder $builder --platform $platforms -t $image $output .
        }
        return
    }
    $platformArgs = if ($Platform) { @("--platform", $Platform) } else { @() }
    Invoke-Step "docker build $image" { docker build @platformArgs -t $image . }
    if ($Push) {
        Invoke-Step "docker push $image" { docker push $image }
    }
    if ($Run) {
        Invoke-Step "docker run $image" { docker run --rm --init -p 8080:8080 @platformArgs $image }
    }
}

# The same jobs with podman. --format docker keeps the Dockerfile's
# HEALTHCHECK (the OCI format has none). Several platforms build into a
# manifest list in local storage, which -Push sends whole. Building for another
# architecture needs qemu-user-static registered with binfmt_misc, as for buildx.
function Invoke-PodmanBuild([string]$image) {
    if ($MultiArch) {
        $platforms = if ($Platform) { $Platform } else { "linux/amd64,linux/arm64" }
        podman manifest exists $image *> $null
        if ($LASTEXITCODE -eq 0) {
            Invoke-Step "podman manifest rm $image (the previous build's list)" { podman manifest rm $image }
        }
        Invoke-Step "podman build $image ($platforms)" {
            podman build --format docker --platform $platforms --manifest $image .
        }
        if ($Push) {
            Invoke-Step "podman manifest push $image" { podman manifest push --all $image "docker://$image" }
        }
        return
    }
    $platformArgs = if ($Platform) { @("--platform", $Platform) } else { @() }
    Invoke-Step "podman build $image" { podman build --format docker @platformArgs -t $image . }
    if ($Push) {
        Invoke-Step "podman push $image" { podman push $image }
    }
    if ($Run) {
        # No --init: podman's needs catatonit, and earshot as pid 1 handles
        # SIGINT and SIGTERM itself (it closes clients with 1001, exits 0).
        Invoke-Step "podman run $image" { podman run --rm -p 8080:8080 @platformArgs $image }
    }
}

if (-not $Docker -and ($MultiArch -or $Platform -or $Registry -or $Push -or $PSBoundParameters.ContainsKey('Tag'))) {
    throw "-MultiArch, -Platform, -Registry, -Push and -Tag need -Docker"
}
if ($Docker -and ($Test -or $Release)) { throw "-Test and -Release apply to local builds; the image is always a Release build" }
if ($Push -and -not $Registry) { throw "-Push needs -Registry (where to push the image)" }
if ($MultiArch -and $Run) { throw "-MultiArch builds for several platforms and cannot -Run; drop one" }

Push-Location -Path $PSScriptRoot
try {
    if ($Docker) { Invoke-DockerBuild } else { Invoke-LocalBuild }
}
finally {
    Pop-Location
}
