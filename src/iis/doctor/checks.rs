//! The checks: each one looks at the merged configuration of one application (its [`Chain`]) and adds a
//! [`Finding`] naming the file and line, what IIS or Python does because of it, and the fix. They are the
//! mistakes that make Python sites on IIS fail (500.19, 500.21, "scriptProcessor could not be found", "The
//! FastCGI process exited unexpectedly") or misbehave (buffered streams, IIS error pages, static files through
//! Python, cold starts, killed requests). The only I/O is asking whether a configured file or folder exists.

use std::collections::HashMap;

use super::model::{self, local_path, AppHost, Chain, Located, OverrideMode, Scope, BY_NAME, FASTCGI, HANDLERS};
use super::report::{Finding, Report, Severity};
use super::xml::Element;
use crate::config::pythonpath::{self, PathListStyle};

const APPCMD: &str = r"%windir%\system32\inetsrv\appcmd.exe";
/// IIS's defaults (iis-docs, system.webServer/fastCgi/application).
const DEFAULT_INSTANCE_MAX_REQUESTS: u64 = 200;
const DEFAULT_ACTIVITY_TIMEOUT: u64 = 70;
const DEFAULT_REQUEST_TIMEOUT: u64 = 90;
/// Share of the machine's memory the FastCGI processes of one application may take before the doctor warns.
const MEMORY_SHARE_PERCENT: u64 = 80;
/// Folders a Python site usually serves static files from.
pub const STATIC_FOLDERS: &[&str] = &["static", "staticfiles", "media", "assets"];

/// Limits the doctor compares IIS's settings with.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Resident memory of one application process, in MB.
    pub app_memory_mb: u64,
    /// This machine's memory, in MB (`None`: unknown, the memory check is skipped).
    pub machine_memory_mb: Option<u64>,
    /// The longest response the application streams, in seconds.
    pub stream_seconds: Option<u64>,
}

/// One application and the configuration that applies to it.
pub struct Context<'a> {
    pub apphost: &'a AppHost,
    pub chain: Chain<'a>,
    /// (folder name, chain at that folder) for each static folder that exists.
    pub static_chains: Vec<(String, Chain<'a>)>,
    /// `Default Web Site/app` (for appcmd), when the site is known.
    pub config_path: Option<String>,
    /// The application's folder, expanded.
    pub physical: String,
    /// The doctor's own environment, for `%NAME%` in configured paths.
    pub env: &'a HashMap<String, String>,
    pub limits: &'a Limits,
    /// Named on the command line (a site picked from a list is skipped when it has no FastCGI handler).
    pub explicit: bool,
}

fn finding(id: &'static str, severity: Severity, at: Option<Located<'_>>) -> Finding {
    Finding {
        id,
        severity,
        file: at.map(|a| a.file.path.clone()),
        line: at.map(|a| a.element.line),
        problem: String::new(),
        effect: String::new(),
        fix: String::new(),
    }
}

fn with(mut f: Finding, problem: String, effect: impl Into<String>, fix: String) -> Finding {
    f.problem = problem;
    f.effect = effect.into();
    f.fix = fix;
    f
}

/// A FastCGI handler's `scriptProcessor` split as IIS does: `fullPath|arguments`.
pub fn split_processor(value: &str) -> (&str, &str) {
    value.split_once('|').unwrap_or((value, ""))
}

fn unquote(path: &str) -> &str {
    path.trim().trim_matches('"')
}

fn is_fastcgi(handler: &Element) -> bool {
    handler
        .attr("modules")
        .is_some_and(|m| m.split(',').any(|x| x.trim().eq_ignore_ascii_case("FastCgiModule")))
}

/// Judged by the file names only: folder names (a site called `python-tools`) say nothing.
fn is_python(full_path: &str, arguments: &str) -> bool {
    let exe = file_name(full_path);
    exe.starts_with("pyfcgi") || exe.starts_with("python") || is_wfastcgi(full_path, arguments)
}

fn is_wfastcgi(full_path: &str, arguments: &str) -> bool {
    file_name(full_path).starts_with("wfastcgi")
        || arguments
            .split_whitespace()
            .any(|a| file_name(a).starts_with("wfastcgi"))
}

fn file_name(path: &str) -> String {
    unquote(path)
        .rsplit(['\\', '/'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_dir(path: &str) -> bool {
    local_path(path).is_dir()
}

fn exists(path: &str) -> bool {
    local_path(path).exists()
}

fn parent(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches(['\\', '/']);
    trimmed.rfind(['\\', '/']).map(|i| &trimmed[..i.max(1)])
}

fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with(['\\', '/']) || (b.len() >= 2 && b[1] == b':')
}

/// Wildcard match of a handler `path` (`*`, `*.py`, `static/*`) against a request path, ignoring case, as
/// IIS matches the file name, or the whole path when the pattern has a slash.
pub fn handler_matches(pattern: &str, url_path: &str) -> bool {
    let subject = if pattern.contains('/') {
        url_path.trim_start_matches('/')
    } else {
        url_path.rsplit('/').next().unwrap_or(url_path)
    };
    // `*.` is IIS's pattern for extensionless names: a name without a dot is matched as if it ended in one.
    let subject = if pattern.ends_with('.') && !subject.contains('.') {
        format!("{subject}.")
    } else {
        subject.to_owned()
    };
    wildcard(&pattern.to_ascii_lowercase(), &subject.to_ascii_lowercase())
}

fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn verb_matches(verbs: &str, verb: &str) -> bool {
    verbs
        .split(',')
        .any(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case(verb))
}

fn verbs_overlap(a: &str, b: &str) -> bool {
    let any = |list: &str| list.split(',').any(|v| v.trim() == "*");
    any(a) || any(b) || a.split(',').any(|v| verb_matches(b, v.trim()))
}

/// appcmd's selector for a FastCGI application.
fn fastcgi_selector(app: &Element) -> String {
    format!(
        "[fullPath='{}',arguments='{}']",
        app.attr("fullPath").unwrap_or("").replace('\'', "''"),
        app.attr("arguments").unwrap_or("").replace('\'', "''")
    )
}

fn fastcgi_set(app: &Element, attribute: &str, value: &str) -> String {
    format!(
        "{APPCMD} set config -section:system.webServer/fastCgi \"/{}.{attribute}:{value}\" /commit:apphost",
        fastcgi_selector(app)
    )
}

fn handler_set(ctx: &Context<'_>, handler: &Element, attribute: &str, value: &str) -> String {
    let name = handler.attr("name").unwrap_or("");
    match &ctx.config_path {
        Some(path) => format!(
            "{APPCMD} set config \"{path}\" -section:system.webServer/handlers \"/[name='{name}'].{attribute}:{value}\""
        ),
        None => format!("set {attribute}=\"{value}\" on the <add name=\"{name}\"> handler"),
    }
}

/// The FastCGI applications registered in applicationHost.config (the only place IIS reads them from).
fn fastcgi_apps<'a>(ctx: &Context<'a>) -> model::Section<'a> {
    let scopes: Vec<Scope<'a>> = ctx.chain.scopes().into_iter().filter(|s| s.in_apphost).collect();
    model::merge(&scopes, "system.webServer/fastCgi", FASTCGI)
}

/// Runs every check for one application. Returns why it was skipped, if it has no FastCGI handler.
pub fn run(ctx: &Context<'_>, report: &mut Report) -> Option<String> {
    sections_allowed(ctx, &ctx.chain, report);
    for (_, chain) in &ctx.static_chains {
        sections_allowed(ctx, chain, report);
    }
    let handlers = ctx.chain.section("system.webServer/handlers", HANDLERS);
    for (dup, earlier) in &handlers.duplicates {
        report.push(duplicate(dup, earlier, "name"));
    }
    let apps = fastcgi_apps(ctx);
    for (dup, earlier) in &apps.duplicates {
        report.push(duplicate(dup, earlier, "fullPath, arguments"));
    }
    let fastcgi: Vec<Located<'_>> = handlers
        .items
        .iter()
        .copied()
        .filter(|h| is_fastcgi(h.element))
        .collect();
    if fastcgi.is_empty() {
        if !ctx.explicit {
            return Some("no FastCGI handler mapping applies to it".into());
        }
        let at = handlers.definitions.last().copied();
        report.push(with(
            finding("no-fastcgi-handler", Severity::Error, at),
            format!("No handler mapping that applies to {} uses FastCgiModule.", ctx.physical),
            "IIS never starts Python for this application: requests are served as static files, listed, or answered 404.",
            format!(
                "add the handler to the <handlers> of {}\\web.config, as `pyfcgi enable` prints it:\n\
                 <add name=\"pyfcgi\" path=\"*\" verb=\"*\" modules=\"FastCgiModule\" scriptProcessor=\"C:\\path\\to\\pyfcgi.exe\" resourceType=\"Unspecified\" requireAccess=\"Script\" responseBufferLimit=\"0\" />",
                ctx.physical
            ),
        ));
        return None;
    }
    modules_present(ctx, &fastcgi, report);
    shadowed_handlers(&fastcgi, report);
    let mut used: Vec<Located<'_>> = Vec::new();
    for handler in &fastcgi {
        let Some(app) = matching_app(ctx, handler, &apps, report) else {
            continue;
        };
        let processor = handler.element.attr("scriptProcessor").unwrap_or("");
        let (full, args) = split_processor(processor);
        if !is_python(full, args) {
            continue;
        }
        response_buffer(ctx, handler, report);
        if !used.iter().any(|u| std::ptr::eq(u.element, app.element)) {
            used.push(app);
        }
    }
    if used.is_empty() {
        return None;
    }
    http_errors(ctx, report);
    static_files(ctx, report);
    let settings = app_settings(&ctx.chain);
    for app in &used {
        application(ctx, app, &settings, report);
    }
    wfastcgi_left(&apps, &used, report);
    None
}

fn duplicate(dup: &Located<'_>, earlier: &Located<'_>, key: &str) -> Finding {
    let name = &dup.element.name;
    let value: Vec<String> = key
        .split(", ")
        .map(|k| format!("{k}='{}'", dup.element.attr(k).unwrap_or("")))
        .collect();
    with(
        finding("duplicate-entry", Severity::Error, Some(*dup)),
        format!(
            "<{name} {}> repeats an entry already added at {}:{} (IIS compares these keys ignoring case).",
            value.join(" "),
            earlier.file.path.display(),
            earlier.element.line
        ),
        format!(
            "IIS refuses the configuration: HTTP Error 500.19 \"Cannot add duplicate collection entry of type '{name}' with unique key attribute '{key}'\" (0x800700b7) for every request."
        ),
        "delete one of the two entries, or put <remove .../> with the same key before the second <add>. \
         Running `wfastcgi-enable` twice causes this in applicationHost.config; `pyfcgi enable` removes its entry first."
            .to_owned(),
    )
}

/// 500.19 causes: a section a web.config may not set (locked, or applicationHost.config only), or one IIS does
/// not know (a module such as URL Rewrite not installed).
fn sections_allowed(ctx: &Context<'_>, chain: &Chain<'_>, report: &mut Report) {
    let scopes = chain.scopes();
    for (index, scope) in scopes.iter().enumerate() {
        if scope.in_apphost {
            continue;
        }
        for group in scope.container.children_named("system.webServer") {
            walk_sections(ctx, &scopes[..index], scope, group, "system.webServer", report);
        }
    }
}

fn walk_sections(
    ctx: &Context<'_>,
    above: &[Scope<'_>],
    scope: &Scope<'_>,
    element: &Element,
    path: &str,
    report: &mut Report,
) {
    for child in &element.children {
        let section_path = format!("{path}/{}", child.name);
        let at = Some(Located {
            element: child,
            file: scope.file,
        });
        let Some(def) = ctx.apphost.section(&section_path) else {
            let prefix = format!("{}/", section_path.to_ascii_lowercase());
            if ctx.apphost.sections.keys().any(|k| k.starts_with(&prefix)) {
                walk_sections(ctx, above, scope, child, &section_path, report);
                continue;
            }
            let module_hint = match child.name.as_str() {
                "rewrite" => " The URL Rewrite module is not installed (it declares <rewrite>).",
                "aspNetCore" => " The ASP.NET Core Module is not installed.",
                "httpPlatform" => " HttpPlatformHandler is not installed.",
                _ => "",
            };
            report.push(with(
                finding("section-unknown", Severity::Error, at),
                format!("<{}> is not declared in applicationHost.config's <configSections>.{module_hint}", child.name),
                format!(
                    "HTTP Error 500.19 \"The configuration section '{}' cannot be read because it is missing a section declaration\" (0x8007000d) for every request under this folder.",
                    child.name
                ),
                format!(
                    "install the IIS module that provides <{}>, or delete the element from {}.",
                    child.name,
                    scope.file.path.display()
                ),
            ));
            continue;
        };
        if def.allow_definition.eq_ignore_ascii_case("AppHostOnly") {
            report.push(with(
                finding("section-apphost-only", Severity::Error, at),
                format!("<{section_path}> may only be set in applicationHost.config (allowDefinition=\"AppHostOnly\")."),
                "HTTP Error 500.19 \"This configuration section cannot be used at this path\" (0x80070021) for every request under this folder.",
                if child.name == "fastCgi" {
                    "remove it from web.config and register the application with `pyfcgi enable` (which writes applicationHost.config).".to_owned()
                } else {
                    format!("move <{}> into applicationHost.config.", child.name)
                },
            ));
            continue;
        }
        let mut mode = def.override_mode_default;
        let mut decided_by: Option<String> = None;
        for higher in above
            .iter()
            .filter(|s| !std::ptr::eq(s.file, scope.file) && s.is_location())
        {
            if higher.section(&section_path).is_none() {
                continue;
            }
            let explicit = higher
                .container
                .attr("overrideMode")
                .map(|m| {
                    if m.eq_ignore_ascii_case("Deny") {
                        OverrideMode::Deny
                    } else {
                        OverrideMode::Allow
                    }
                })
                .or_else(|| {
                    higher.container.attr("allowOverride").map(|v| {
                        if v.eq_ignore_ascii_case("false") {
                            OverrideMode::Deny
                        } else {
                            OverrideMode::Allow
                        }
                    })
                });
            if let Some(explicit) = explicit {
                mode = explicit;
                decided_by = Some(format!("{}:{}", higher.file.path.display(), higher.container.line));
            }
        }
        if mode == OverrideMode::Deny {
            let why = decided_by.unwrap_or_else(|| {
                format!(
                    "overrideModeDefault=\"Deny\" in applicationHost.config line {}",
                    def.line
                )
            });
            report.push(with(
                finding("section-locked", Severity::Error, at),
                format!("<{section_path}> is locked at a parent level ({why}), so this web.config may not set it."),
                "HTTP Error 500.19 \"This configuration section cannot be used at this path. This happens when the section is locked at a parent level\" (0x80070021).",
                format!("{APPCMD} unlock config -section:{section_path}"),
            ));
        }
    }
}

fn modules_present(ctx: &Context<'_>, handlers: &[Located<'_>], report: &mut Report) {
    let apphost_scopes: Vec<Scope<'_>> = ctx.chain.scopes().into_iter().filter(|s| s.in_apphost).collect();
    let global = model::merge(&apphost_scopes, "system.webServer/globalModules", BY_NAME);
    let has = |items: &[Located<'_>]| {
        items.iter().any(|m| {
            m.element
                .attr("name")
                .is_some_and(|n| n.eq_ignore_ascii_case("FastCgiModule"))
        })
    };
    let handler = handlers[0];
    let name = handler.element.attr("name").unwrap_or("");
    let effect = format!(
        "HTTP Error 500.21 \"Handler \"{name}\" has a bad module \"FastCgiModule\" in its module list\" for every request."
    );
    if !has(&global.items) {
        report.push(with(
            finding("fastcgi-module-missing", Severity::Error, Some(handler)),
            format!(
                "FastCgiModule is not in applicationHost.config's <globalModules>: the IIS CGI feature is not installed, yet handler \"{name}\" needs it."
            ),
            effect,
            "install the CGI role service: `Install-WindowsFeature Web-CGI` (Windows Server) or \
             `Enable-WindowsOptionalFeature -Online -FeatureName IIS-CGI -All` (Windows 10/11), \
             or `dism /online /enable-feature /featurename:IIS-CGI /all`."
                .to_owned(),
        ));
        return;
    }
    let modules = ctx.chain.section("system.webServer/modules", BY_NAME);
    if !has(&modules.items) {
        report.push(with(
            finding("fastcgi-module-missing", Severity::Error, modules.definitions.last().copied().or(Some(handler))),
            "FastCgiModule is installed but not enabled for this application: it is missing from (or removed in) the <modules> that apply here.".to_owned(),
            effect,
            "delete the <remove name=\"FastCgiModule\" /> (or the <clear />), or add <add name=\"FastCgiModule\" /> to <modules>; \
             in applicationHost.config the module is listed under <location path=\"\"><system.webServer><modules>."
                .to_owned(),
        ));
    }
}

/// Two FastCGI handlers for the same requests: IIS uses the first, the second never runs.
fn shadowed_handlers(handlers: &[Located<'_>], report: &mut Report) {
    for (index, later) in handlers.iter().enumerate() {
        let later_path = later.element.attr("path").unwrap_or("*");
        let later_verb = later.element.attr("verb").unwrap_or("*");
        let Some(first) = handlers[..index].iter().find(|h| {
            let path = h.element.attr("path").unwrap_or("*");
            (path == "*" || path.eq_ignore_ascii_case(later_path))
                && verbs_overlap(h.element.attr("verb").unwrap_or("*"), later_verb)
        }) else {
            continue;
        };
        let name = |h: &Located<'_>| h.element.attr("name").unwrap_or("").to_owned();
        let processor = |h: &Located<'_>| h.element.attr("scriptProcessor").unwrap_or("").to_owned();
        report.push(with(
            finding("handler-shadowed", Severity::Warning, Some(*later)),
            format!(
                "Handler \"{}\" ({}) is listed after handler \"{}\" ({}), which takes the same requests.",
                name(later),
                processor(later),
                name(first),
                processor(first)
            ),
            format!(
                "every request goes to \"{}\"; \"{}\" never runs (after a move from wfastcgi, the site may still be running wfastcgi).",
                name(first),
                name(later)
            ),
            format!(
                "remove the handler that should not run (in {} line {}), or add <remove name=\"{}\" /> before the one you want.",
                first.file.path.display(),
                first.element.line,
                name(first)
            ),
        ));
    }
}

/// The FastCGI application a handler's `scriptProcessor` selects: IIS compares `fullPath|arguments` as strings.
fn matching_app<'a>(
    ctx: &Context<'a>,
    handler: &Located<'a>,
    apps: &model::Section<'a>,
    report: &mut Report,
) -> Option<Located<'a>> {
    let processor = handler.element.attr("scriptProcessor").unwrap_or("");
    let (full, args) = split_processor(processor);
    let exact = apps.items.iter().find(|a| {
        a.element.attr("fullPath").unwrap_or("") == full && a.element.attr("arguments").unwrap_or("") == args
    });
    if let Some(app) = exact {
        return Some(*app);
    }
    let loose = |s: &str| unquote(s).to_lowercase();
    let near: Vec<String> = apps
        .items
        .iter()
        .filter(|a| {
            loose(a.element.attr("fullPath").unwrap_or("")) == loose(full)
                || a.element
                    .attr("fullPath")
                    .is_some_and(|p| file_name(p) == file_name(full))
        })
        .map(|a| {
            let args = a.element.attr("arguments").unwrap_or("");
            let full = a.element.attr("fullPath").unwrap_or("");
            if args.is_empty() {
                format!("{full} (line {})", a.element.line)
            } else {
                format!("{full}|{args} (line {})", a.element.line)
            }
        })
        .collect();
    let hint = if near.is_empty() {
        String::from(" No registered application is close to it.")
    } else {
        format!(
            " Registered and nearly the same: {}. IIS compares the strings exactly: quotes, letter case and the |arguments part all count.",
            near.join("; ")
        )
    };
    let name = handler.element.attr("name").unwrap_or("");
    report.push(with(
        finding("script-processor-unmatched", Severity::Error, Some(*handler)),
        format!(
            "Handler \"{name}\" has scriptProcessor=\"{processor}\", but no <fastCgi><application> in {} has fullPath=\"{full}\" and arguments=\"{args}\".{hint}",
            ctx.apphost.file.path.display()
        ),
        "every request it handles fails with HTTP 500: \"<handler> scriptProcessor could not be found in <fastCGI> application configuration\" (0x80070585).",
        if near.is_empty() {
            format!(
                "register the executable: `{} enable` (run the pyfcgi.exe the handler names), then use the scriptProcessor it prints.",
                unquote(full)
            )
        } else {
            "copy the registered value exactly into scriptProcessor (for pyfcgi: what `pyfcgi enable` printed), or \
             re-register with `pyfcgi enable`."
                .to_owned()
        },
    ));
    None
}

fn response_buffer(ctx: &Context<'_>, handler: &Located<'_>, report: &mut Report) {
    let value = handler.element.attr("responseBufferLimit");
    if value.map(str::trim) == Some("0") {
        return;
    }
    report.push(with(
        finding("response-buffer-limit", Severity::Warning, Some(*handler)),
        format!(
            "Handler \"{}\" has responseBufferLimit={} (IIS buffers up to that many bytes of each response).",
            handler.element.attr("name").unwrap_or(""),
            value.map(|v| format!("\"{v}\"")).unwrap_or_else(|| "unset, so 4194304 (4 MB)".into())
        ),
        "streamed responses (server-sent events, large downloads, progress output) reach the browser only when the buffer fills or the response ends.",
        format!(
            "add responseBufferLimit=\"0\" to the handler; or {}",
            handler_set(ctx, handler.element, "responseBufferLimit", "0")
        ),
    ));
}

fn http_errors(ctx: &Context<'_>, report: &mut Report) {
    let section = ctx.chain.section("system.webServer/httpErrors", BY_NAME);
    let (value, at) = match section.attr("existingResponse") {
        Some((value, at)) => (value.to_owned(), Some(at)),
        None => ("Auto".to_owned(), section.definitions.first().copied()),
    };
    if value.eq_ignore_ascii_case("PassThrough") {
        return;
    }
    let mode = section
        .attr("errorMode")
        .map(|(v, _)| v.to_owned())
        .unwrap_or_else(|| "DetailedLocalOnly".into());
    let fix = match &ctx.config_path {
        Some(path) => format!(
            "put <httpErrors existingResponse=\"PassThrough\" /> in the <system.webServer> of the application's web.config, or \
             {APPCMD} set config \"{path}\" -section:system.webServer/httpErrors /existingResponse:PassThrough"
        ),
        None => "put <httpErrors existingResponse=\"PassThrough\" /> in the <system.webServer> of the application's web.config".into(),
    };
    report.push(with(
        finding("http-errors-replace", Severity::Warning, at),
        format!("<httpErrors existingResponse=\"{value}\" errorMode=\"{mode}\"> applies to this application."),
        "IIS replaces the application's own 4xx/5xx pages (Django/Flask error pages, JSON error bodies of an API) with its own error page.",
        fix,
    ));
}

fn static_files(ctx: &Context<'_>, report: &mut Report) {
    for (folder, chain) in &ctx.static_chains {
        let handlers = chain.section("system.webServer/handlers", HANDLERS);
        let url = format!("/{folder}/site.css");
        let first = handlers.items.iter().find(|h| {
            handler_matches(h.element.attr("path").unwrap_or(""), &url)
                && verb_matches(h.element.attr("verb").unwrap_or("*"), "GET")
        });
        let Some(first) = first.filter(|h| is_fastcgi(h.element)) else {
            continue;
        };
        let name = first.element.attr("name").unwrap_or("");
        report.push(with(
            finding("static-files-to-python", Severity::Warning, Some(*first)),
            format!(
                "Files in {} go to handler \"{name}\" (path=\"{}\"), which is listed before IIS's StaticFile handler there.",
                model::join(&ctx.physical, folder),
                first.element.attr("path").unwrap_or("")
            ),
            "every CSS, JavaScript and image request starts Python (slow, and 404 unless the application serves the folder itself).",
            format!(
                "add to the application's web.config:\n<location path=\"{folder}\"><system.webServer><handlers><remove name=\"{name}\" /></handlers></system.webServer></location>\n\
                 or put a web.config with <handlers><remove name=\"{name}\" /></handlers> in the {folder} folder (iis/static.web.config)."
            ),
        ));
    }
}

/// The `<appSettings>` of the application's web.config as wfastcgi and pyfcgi read them: every `add` under
/// every `appSettings`, `<location>` blocks included; a later key replaces an earlier one.
fn app_settings<'a>(chain: &Chain<'a>) -> Vec<(String, String, Located<'a>)> {
    let mut out: Vec<(String, String, Located<'a>)> = Vec::new();
    let Some(Some(file)) = chain.web_configs.last() else {
        return out;
    };
    fn walk<'a>(element: &'a Element, file: &'a super::xml::ConfigFile, out: &mut Vec<(String, String, Located<'a>)>) {
        for child in &element.children {
            if child.name == "appSettings" {
                for add in child.children_named("add") {
                    let key = add.attr("key").unwrap_or("").trim().to_owned();
                    let value = add.attr("value").unwrap_or("").to_owned();
                    out.retain(|(k, _, _)| *k != key);
                    out.push((key, value, Located { element: add, file }));
                }
            } else {
                walk(child, file, out);
            }
        }
    }
    walk(&file.root, file, &mut out);
    out
}

/// The settings the process sees: the FastCGI `environmentVariables`, then web.config `<appSettings>` over them.
fn process_settings<'a>(
    app: &Located<'a>,
    settings: &[(String, String, Located<'a>)],
) -> Vec<(String, String, Located<'a>)> {
    let mut out: Vec<(String, String, Located<'a>)> = Vec::new();
    if let Some(vars) = app.element.child("environmentVariables") {
        for add in vars.children_named("add") {
            let name = add.attr("name").unwrap_or("").to_owned();
            out.retain(|(n, _, _)| !n.eq_ignore_ascii_case(&name));
            out.push((
                name,
                add.attr("value").unwrap_or("").to_owned(),
                Located {
                    element: add,
                    file: app.file,
                },
            ));
        }
    }
    for (key, value, at) in settings {
        out.retain(|(n, _, _)| n != key);
        out.push((key.clone(), value.clone(), *at));
    }
    out
}

fn number(app: &Element, attribute: &str) -> Option<u64> {
    app.attr(attribute).and_then(|v| v.trim().parse().ok())
}

fn application(ctx: &Context<'_>, app: &Located<'_>, settings: &[(String, String, Located<'_>)], report: &mut Report) {
    let element = app.element;
    let full = element.attr("fullPath").unwrap_or("");
    let args = element.attr("arguments").unwrap_or("");
    let shown = if args.is_empty() {
        full.to_owned()
    } else {
        format!("{full}|{args}")
    };
    let vars = process_settings(app, settings);
    let lookup = |name: &str| -> Option<String> {
        vars.iter()
            .rev()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v, _)| v.clone())
            .or_else(|| {
                ctx.env
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            })
    };
    let get = |name: &str| vars.iter().rev().find(|(n, _, _)| n.eq_ignore_ascii_case(name));

    if is_wfastcgi(full, args) {
        report.push(with(
            finding("wfastcgi-in-use", Severity::Warning, Some(*app)),
            format!("This application runs wfastcgi ({shown}), which is no longer maintained."),
            "the known wfastcgi problems stay: uploads copied quadratically, tracebacks sent to the browser as FastCGI stderr, no graceful shutdown.",
            "run `pyfcgi enable` with the pyfcgi.exe in the site's venv, then set the handler's scriptProcessor to the value it prints; \
             web.config <appSettings> keep working unchanged."
                .to_owned(),
        ));
    }

    match number(element, "instanceMaxRequests") {
        Some(n) if n != DEFAULT_INSTANCE_MAX_REQUESTS => {}
        _ => report.push(with(
            finding("instance-max-requests-default", Severity::Warning, Some(*app)),
            format!("instanceMaxRequests is IIS's default of {DEFAULT_INSTANCE_MAX_REQUESTS} for {shown}."),
            "IIS replaces each process after 200 requests, and the next request waits for Python and the application to start again (seconds for Django or ML models).",
            fastcgi_set(element, "instanceMaxRequests", "10000"),
        )),
    }

    match number(element, "signalBeforeTerminateSeconds") {
        Some(n) if n > 0 => {}
        _ => report.push(with(
            finding("signal-before-terminate", Severity::Warning, Some(*app)),
            format!("signalBeforeTerminateSeconds is unset or 0 for {shown}."),
            "when IIS recycles or stops the process it kills it at once: the request in flight is cut off (the browser gets a broken response).",
            fastcgi_set(element, "signalBeforeTerminateSeconds", "30"),
        )),
    }

    let activity = number(element, "activityTimeout").unwrap_or(DEFAULT_ACTIVITY_TIMEOUT);
    let request = number(element, "requestTimeout").unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    if let Some((_, value, at)) = get("PYFCGI_REQUEST_TIMEOUT") {
        if let Ok(own) = value.trim().parse::<u64>() {
            let mut check = |id, attribute: &str, iis: u64, what: &str| {
                if iis < own {
                    report.push(with(
                        finding(id, Severity::Warning, Some(*app)),
                        format!(
                            "{attribute} is {iis} s for {shown}, shorter than PYFCGI_REQUEST_TIMEOUT={own} ({}:{}).",
                            at.file.path.display(),
                            at.element.line
                        ),
                        format!(
                            "IIS kills {what} after {iis} s (error 0x80070102), before pyfcgi's own timeout applies."
                        ),
                        fastcgi_set(element, attribute, &own.to_string()),
                    ));
                }
            };
            check(
                "request-timeout-short",
                "requestTimeout",
                request,
                "every request still running",
            );
            check(
                "activity-timeout-short",
                "activityTimeout",
                activity,
                "a request that has written nothing",
            );
        }
    }
    if let Some(stream) = ctx.limits.stream_seconds {
        if request < stream {
            report.push(with(
                finding("request-timeout-short", Severity::Warning, Some(*app)),
                format!("requestTimeout is {request} s for {shown}, shorter than the {stream} s streams the application sends (--stream-seconds)."),
                format!("IIS cuts every stream off after {request} s."),
                fastcgi_set(element, "requestTimeout", &stream.to_string()),
            ));
        }
    }

    if let (Some(n), Some(machine)) = (number(element, "maxInstances"), ctx.limits.machine_memory_mb) {
        let need = n * ctx.limits.app_memory_mb;
        if n > 0 && need * 100 > machine * MEMORY_SHARE_PERCENT {
            report.push(with(
                finding("max-instances-memory", Severity::Warning, Some(*app)),
                format!(
                    "maxInstances={n} processes × {} MB per process = {need} MB, more than {MEMORY_SHARE_PERCENT}% of this machine's {machine} MB.",
                    ctx.limits.app_memory_mb
                ),
                "under load IIS starts that many processes, each loading the whole application; the machine pages or runs out of memory.",
                format!(
                    "{} (pass --app-memory with the working set Task Manager shows for one pyfcgi.exe)",
                    fastcgi_set(element, "maxInstances", &(machine * MEMORY_SHARE_PERCENT / 100 / ctx.limits.app_memory_mb.max(1)).max(1).to_string())
                ),
            ));
        }
    }

    executables(ctx, app, full, args, report);
    paths(ctx, &vars, &lookup, report);
    if get("WSGI_HANDLER").is_none_or(|(_, v, _)| v.trim().is_empty()) && !args.contains("--app") {
        report.push(with(
            finding("wsgi-handler-missing", Severity::Error, Some(*app)),
            format!(
                "WSGI_HANDLER is set neither in {}'s <appSettings> nor in the environmentVariables of {shown}.",
                ctx.chain.web_configs.last().and_then(|f| f.as_ref()).map(|f| f.path.display().to_string()).unwrap_or_else(|| format!("{}\\web.config", ctx.physical))
            ),
            "every request fails with HTTP 500: the application to run is not known (wfastcgi: \"WSGI_HANDLER env var must be set\").",
            "add <add key=\"WSGI_HANDLER\" value=\"app.app\" /> (Flask) or value=\"django.core.wsgi.get_wsgi_application()\" (Django) to <appSettings>.".to_owned(),
        ));
    }
}

fn missing(
    id: &'static str,
    severity: Severity,
    at: Located<'_>,
    problem: String,
    effect: &str,
    fix: String,
) -> Finding {
    with(finding(id, severity, Some(at)), problem, effect, fix)
}

/// The executable and what it needs beside it.
fn executables(ctx: &Context<'_>, app: &Located<'_>, full: &str, args: &str, report: &mut Report) {
    let exe = model::expand(unquote(full), &|n| ctx.env.get(n).cloned());
    let exited = "IIS cannot start the process: every request fails with HTTP 500 (\"The FastCGI process exited unexpectedly\" or \"could not be started\").";
    if !exists(&exe) {
        report.push(missing(
            "path-missing",
            Severity::Error,
            *app,
            format!("The FastCGI executable {exe} does not exist."),
            exited,
            "correct fullPath (and the handler's scriptProcessor), or register the right exe with `pyfcgi enable`."
                .into(),
        ));
        return;
    }
    let script = unquote(args);
    if script.to_ascii_lowercase().ends_with(".py") && !exists(script) {
        report.push(missing(
            "path-missing",
            Severity::Error,
            *app,
            format!("The script {script} in arguments does not exist (`pip uninstall wfastcgi` leaves the registration behind)."),
            exited,
            format!("{APPCMD} set config -section:system.webServer/fastCgi \"/-{}\" /commit:apphost, and use pyfcgi", fastcgi_selector(app.element)),
        ));
    }
    if !file_name(&exe).starts_with("pyfcgi") {
        return;
    }
    let Some(dir) = parent(&exe) else { return };
    let core = model::join(dir, "pyfcgi_core.dll");
    if exe.to_ascii_lowercase().ends_with(".exe") && !exists(&core) {
        report.push(missing(
            "path-missing",
            Severity::Error,
            *app,
            format!("{core} is missing: pyfcgi.exe is only the launcher, the server is that DLL beside it."),
            exited,
            "copy pyfcgi_core.dll of the same build next to pyfcgi.exe (or reinstall pyfcgi into the venv).".into(),
        ));
    }
    // The venv around the exe (Scripts\pyfcgi.exe with pyvenv.cfg one folder up, or beside it) names the base Python.
    for venv in [Some(dir), parent(dir)].into_iter().flatten() {
        let cfg = model::join(venv, "pyvenv.cfg");
        let Ok(text) = std::fs::read_to_string(local_path(&cfg)) else {
            continue;
        };
        let home = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("home").then(|| v.trim().to_owned())
        });
        if let Some(home) = home.filter(|h| !is_dir(h)) {
            report.push(missing(
                "path-missing",
                Severity::Error,
                *app,
                format!("{cfg} names home = {home} as the venv's base Python, and that folder does not exist."),
                "pyfcgi.exe cannot load Python and exits with code 3: every request fails with \"The FastCGI process exited unexpectedly\".",
                format!("reinstall that Python in {home}, or recreate the venv (`python -m venv --clear {venv}`), or correct home in {cfg}."),
            ));
        }
        break;
    }
}

/// Settings that name files or folders which must exist.
fn paths(
    ctx: &Context<'_>,
    vars: &[(String, String, Located<'_>)],
    lookup: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    let absolute = |p: &str| {
        if is_absolute(p) {
            p.to_owned()
        } else {
            model::join(&ctx.physical, p)
        }
    };
    for (name, value, at) in vars {
        let upper = name.to_ascii_uppercase();
        let value = model::expand(value.trim(), lookup);
        if value.is_empty() {
            continue;
        }
        let source = format!("{name}={value} ({}:{})", at.file.path.display(), at.element.line);
        match upper.as_str() {
            "WSGI_LOG" => {
                let file = absolute(&value);
                if let Some(dir) = parent(&file).filter(|d| !is_dir(d)) {
                    report.push(missing(
                        "path-missing",
                        Severity::Warning,
                        *at,
                        format!("{source}: the folder {dir} does not exist."),
                        "no log is written (pyfcgi says so once and keeps serving; wfastcgi fails to start instead), so errors leave no trace.",
                        format!("create {dir} and let the pool identity write there: icacls \"{dir}\" /grant \"IIS AppPool\\POOL:(OI)(CI)M\""),
                    ));
                }
            }
            "PYTHONPATH" => {
                for entry in pythonpath::process(&value, lookup, PathListStyle::Windows) {
                    let path = absolute(&entry);
                    if !exists(&path) {
                        report.push(missing(
                            "path-missing",
                            Severity::Warning,
                            *at,
                            format!("{source}: the entry {path} does not exist."),
                            "modules expected there cannot be imported: \"Error occurred while reading WSGI handler\" / ModuleNotFoundError.",
                            format!("correct or remove {entry} in {name}."),
                        ));
                    }
                }
            }
            "PYFCGI_VENV" | "VIRTUAL_ENV" => {
                let dir = absolute(&value);
                if !exists(&model::join(&dir, "pyvenv.cfg")) {
                    report.push(missing(
                        "path-missing",
                        Severity::Error,
                        *at,
                        format!("{source}: {dir} is not a virtual environment (no pyvenv.cfg)."),
                        "pyfcgi refuses to start with another Python than the venv's: every request fails with \"The FastCGI process exited unexpectedly\".",
                        format!("point {name} at the venv folder (the one holding pyvenv.cfg), or create it: python -m venv {dir}"),
                    ));
                }
            }
            "PYFCGI_PYTHON_HOME" | "PYTHONHOME" | "PYFCGI_APP_ROOT" => {
                let dir = absolute(&value);
                if !is_dir(&dir) {
                    report.push(missing(
                        "path-missing",
                        Severity::Error,
                        *at,
                        format!("{source}: the folder {dir} does not exist."),
                        if upper == "PYFCGI_APP_ROOT" {
                            "the application cannot be loaded: every request fails with HTTP 500."
                        } else {
                            "Python cannot be loaded: every request fails with \"The FastCGI process exited unexpectedly\"."
                        },
                        format!("correct {name}, or remove it."),
                    ));
                }
            }
            "WSGI_ALT_VIRTUALENV_ACTIVATE_THIS" => {
                let file = absolute(&value);
                if !exists(&file) {
                    report.push(missing(
                        "path-missing",
                        Severity::Error,
                        *at,
                        format!("{source}: {file} does not exist."),
                        "ptvs_virtualenv_proxy fails at import: \"Error occurred while reading WSGI handler\".",
                        "pyfcgi needs no proxy: set WSGI_HANDLER to the application itself and remove the WSGI_ALT_VIRTUALENV_* settings.".into(),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// A wfastcgi registration left in applicationHost.config beside pyfcgi's.
fn wfastcgi_left(apps: &model::Section<'_>, used: &[Located<'_>], report: &mut Report) {
    let uses_pyfcgi = used
        .iter()
        .any(|u| file_name(u.element.attr("fullPath").unwrap_or("")).starts_with("pyfcgi"));
    if !uses_pyfcgi {
        return;
    }
    for app in &apps.items {
        let (full, args) = (
            app.element.attr("fullPath").unwrap_or(""),
            app.element.attr("arguments").unwrap_or(""),
        );
        if is_wfastcgi(full, args) && !used.iter().any(|u| std::ptr::eq(u.element, app.element)) {
            report.push(with(
                finding("wfastcgi-registration-left", Severity::Warning, Some(*app)),
                format!("wfastcgi is still registered as a FastCGI application ({full}|{args}) beside pyfcgi."),
                "any handler still naming it runs the unmaintained wfastcgi, and `pip uninstall wfastcgi` leaves it pointing at a deleted script.",
                format!(
                    "wfastcgi-disable, or {APPCMD} set config -section:system.webServer/fastCgi \"/-{}\" /commit:apphost",
                    fastcgi_selector(app.element)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_paths_match_like_iis() {
        assert!(handler_matches("*", "/static/site.css"));
        assert!(handler_matches("*.CSS", "/static/site.css"));
        assert!(!handler_matches("*.py", "/static/site.css"));
        assert!(handler_matches("static/*", "/static/site.css"));
        assert!(!handler_matches("*.", "/static/site.css"));
        assert!(handler_matches("*.", "/static/readme"));
        assert!(verb_matches("GET,HEAD", "get") && !verb_matches("POST", "GET") && verb_matches("*", "GET"));
        assert!(verbs_overlap("*", "POST") && verbs_overlap("GET,POST", "POST") && !verbs_overlap("GET", "POST"));
    }

    #[test]
    fn script_processor_splits_at_the_first_bar() {
        assert_eq!(
            split_processor(r"C:\py\python.exe|C:\w.py"),
            (r"C:\py\python.exe", r"C:\w.py")
        );
        assert_eq!(
            split_processor(r#""C:\a b\pyfcgi.exe""#),
            (r#""C:\a b\pyfcgi.exe""#, "")
        );
        assert_eq!(parent(r"C:\a\b.log"), Some(r"C:\a"));
        assert!(is_absolute(r"C:\x") && is_absolute("/x") && !is_absolute("lib"));
    }
}
