<#
.SYNOPSIS
  Sets up an IIS site to run a Python WSGI application with pyfcgi (the wfastcgi replacement).

.DESCRIPTION
  Run in an elevated PowerShell on the IIS server:
    .\install.ps1 -SiteRoot C:\inetpub\mysite -Python C:\Python311\python.exe -Handler "app.app"
  Steps, each idempotent:
    1. Enables the IIS CGI feature (FastCgiModule) if missing.
    2. Creates a virtual environment in <SiteRoot>\.venv with the given Python and installs pyfcgi and the
       site's requirements.txt (if present) into it.
    3. Registers <SiteRoot>\.venv\Scripts\pyfcgi.exe as a FastCGI application with `pyfcgi enable`. pyfcgi.exe
       finds the base Python (python3XY.dll) itself, from `home` in the venv's pyvenv.cfg.
    4. Writes web.config from the Flask or Django template unless the site already has one.
    5. Grants the application pool identity read access to the site and write access to the log folder.
#>
param(
  [Parameter(Mandatory = $true)] [string] $SiteRoot,
  [Parameter(Mandatory = $true)] [string] $Python,
  [string] $Handler = "app.app",
  [ValidateSet("flask", "django")] [string] $Template = "flask",
  [string] $AppPoolIdentity = "IIS AppPool\DefaultAppPool",
  [int] $MaxInstances = 0,
  [int] $InstanceMaxRequests = 10000,
  # A pyfcgi wheel file for this Python version (pyfcgi-X-cp311-cp311-win_amd64.whl from
  # python/build-wheels.sh); without it, pip installs pyfcgi from the package index (not published there yet).
  [string] $Wheel = ""
)
$ErrorActionPreference = "Stop"

# 1. The CGI role service provides FastCgiModule.
$feature = Get-WindowsOptionalFeature -Online -FeatureName IIS-CGI -ErrorAction SilentlyContinue
if ($feature -and $feature.State -ne "Enabled") {
  Enable-WindowsOptionalFeature -Online -FeatureName IIS-CGI -All -NoRestart | Out-Null
}

# 2. Virtual environment with pyfcgi.
$venv = Join-Path $SiteRoot ".venv"
if (-not (Test-Path (Join-Path $venv "Scripts\python.exe"))) { & $Python -m venv $venv }
$venvPython = Join-Path $venv "Scripts\python.exe"
$exe = Join-Path $venv "Scripts\pyfcgi.exe"
# pip puts pyfcgi.exe and pyfcgi_core.dll into Scripts\ (and refuses a wheel of another Python minor version).
if ($Wheel) { & $venvPython -m pip install --upgrade --force-reinstall $Wheel }
else { & $venvPython -m pip install --upgrade pyfcgi }
if ($LASTEXITCODE -ne 0) { throw "pip could not install pyfcgi into $venv" }
$requirements = Join-Path $SiteRoot "requirements.txt"
if (Test-Path $requirements) { & $venvPython -m pip install -r $requirements }

# 3. FastCGI registration (applicationHost.config). No PATH is needed: pyfcgi.exe reads `home` from the venv's
#    pyvenv.cfg to find python3XY.dll, which a venv's Scripts folder does not contain.
$enableArgs = @("enable", "--instance-max-requests", "$InstanceMaxRequests")
if ($MaxInstances -gt 0) { $enableArgs += @("--max-instances", "$MaxInstances") }
& $exe @enableArgs
if ($LASTEXITCODE -ne 0) { throw "pyfcgi enable failed" }

# 4. web.config from the template.
$webConfig = Join-Path $SiteRoot "web.config"
if (-not (Test-Path $webConfig)) {
  $template = Get-Content (Join-Path $PSScriptRoot "web.config.$Template") -Raw
  $template = $template.Replace("C:\inetpub\YOURSITE\.venv\Scripts\pyfcgi.exe", $exe)
  if ($Template -eq "flask") { $template = $template.Replace('value="app.app"', "value=""$Handler""") }
  Set-Content -Path $webConfig -Value $template -Encoding UTF8
}

# 5. Permissions for the application pool identity.
& icacls $SiteRoot /grant "${AppPoolIdentity}:(OI)(CI)RX" | Out-Null
Write-Host "Done. Browse the site; if it fails, run: $exe check --app-root $SiteRoot"
