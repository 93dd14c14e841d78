//! IIS's configuration system, as far as the doctor needs it: the section definitions and sites of
//! applicationHost.config, which web.config files a URL inherits from (site root down to the folder, through the
//! virtual directories' physical paths), which `<location path=...>` tags apply to it, and how a section's
//! attributes and collections merge along that chain (`<add>`, `<remove>`, `<clear>`; handlers are the
//! collection whose deeper entries go *first*, which is why a web.config's `path="*"` handler shadows IIS's
//! StaticFile). Paths are kept as IIS spells them (Windows form); [`local_path`] turns one into a path this
//! process can open.

use std::collections::HashMap;
use std::path::PathBuf;

use super::xml::{ConfigFile, Element};

/// A path from the configuration as a path to open here. On Windows it is used as is; elsewhere (tests, or a
/// copied configuration inspected on Linux) backslashes are read as `/`.
pub fn local_path(windows: &str) -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(windows)
    } else {
        PathBuf::from(windows.replace('\\', "/"))
    }
}

/// Joins a Windows-form folder and a relative part with one backslash.
pub fn join(dir: &str, rest: &str) -> String {
    let dir = dir.trim_end_matches(['\\', '/']);
    let rest = rest.trim_start_matches(['\\', '/']);
    if rest.is_empty() {
        dir.to_owned()
    } else {
        format!("{dir}\\{}", rest.replace('/', "\\"))
    }
}

/// Expands `%NAME%` as IIS does in physical paths; unknown names are left as they are.
pub fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 && !after[..end].contains([' ', '\\']) => match env(&after[..end]) {
                Some(v) => {
                    out.push_str(&rest[..start]);
                    out.push_str(&v);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[..start + end + 2]);
                    rest = &after[end + 1..];
                }
            },
            _ => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `overrideModeDefault`/`overrideMode`: whether a lower level may set a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideMode {
    Allow,
    Deny,
}

impl OverrideMode {
    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "allow" => Some(OverrideMode::Allow),
            "deny" => Some(OverrideMode::Deny),
            _ => None,
        }
    }
}

/// A `<section>` of `<configSections>`.
#[derive(Debug, Clone)]
pub struct SectionDef {
    pub override_mode_default: OverrideMode,
    /// `allowDefinition`: `Everywhere` (default), `MachineToApplication`, `AppHostOnly`, ...
    pub allow_definition: String,
    pub line: u32,
}

/// An application of a site, with its virtual directories.
#[derive(Debug, Clone)]
pub struct Application {
    /// `/` or `/app`.
    pub path: String,
    pub pool: String,
    /// (virtual path below the application, physical path as written).
    pub vdirs: Vec<(String, String)>,
    pub line: u32,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub apps: Vec<Application>,
    pub line: u32,
}

/// An application pool, for naming the identity `check --as` should test.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    /// `IIS AppPool\NAME`, `NT AUTHORITY\NETWORK SERVICE`, or the configured user.
    pub identity: String,
}

/// applicationHost.config with its section definitions, sites and pools read out.
#[derive(Debug)]
pub struct AppHost {
    pub file: ConfigFile,
    /// Keyed by lower-case section path (`system.webserver/handlers`).
    pub sections: HashMap<String, SectionDef>,
    pub sites: Vec<Site>,
    pub pools: Vec<Pool>,
}

impl AppHost {
    pub fn new(file: ConfigFile) -> Self {
        let mut sections = HashMap::new();
        if let Some(defs) = file.root.child("configSections") {
            collect_sections(defs, "", &mut sections);
        }
        let sites = file
            .root
            .descend("system.applicationHost/sites")
            .map(|s| s.children_named("site").map(read_site).collect())
            .unwrap_or_default();
        let pools = file
            .root
            .descend("system.applicationHost/applicationPools")
            .map(|p| p.children_named("add").filter_map(read_pool).collect())
            .unwrap_or_default();
        AppHost {
            file,
            sections,
            sites,
            pools,
        }
    }

    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub fn section(&self, path: &str) -> Option<&SectionDef> {
        self.sections.get(&path.to_ascii_lowercase())
    }
}

fn collect_sections(group: &Element, prefix: &str, out: &mut HashMap<String, SectionDef>) {
    for child in &group.children {
        let Some(name) = child.attr("name") else { continue };
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        match child.name.as_str() {
            "sectionGroup" => collect_sections(child, &path, out),
            "section" => {
                out.insert(
                    path.to_ascii_lowercase(),
                    SectionDef {
                        override_mode_default: child
                            .attr("overrideModeDefault")
                            .and_then(OverrideMode::parse)
                            .unwrap_or(OverrideMode::Allow),
                        allow_definition: child.attr("allowDefinition").unwrap_or("Everywhere").to_owned(),
                        line: child.line,
                    },
                );
            }
            _ => {}
        }
    }
}

fn read_site(site: &Element) -> Site {
    let default_pool = site
        .child("applicationDefaults")
        .and_then(|d| d.attr("applicationPool"))
        .unwrap_or("DefaultAppPool");
    Site {
        name: site.attr("name").unwrap_or("").to_owned(),
        apps: site
            .children_named("application")
            .map(|app| Application {
                path: app.attr("path").unwrap_or("/").to_owned(),
                pool: app.attr("applicationPool").unwrap_or(default_pool).to_owned(),
                vdirs: app
                    .children_named("virtualDirectory")
                    .map(|v| {
                        (
                            v.attr("path").unwrap_or("/").to_owned(),
                            v.attr("physicalPath").unwrap_or("").to_owned(),
                        )
                    })
                    .collect(),
                line: app.line,
            })
            .collect(),
        line: site.line,
    }
}

fn read_pool(pool: &Element) -> Option<Pool> {
    let name = pool.attr("name")?.to_owned();
    let model = pool.child("processModel");
    let identity = match model
        .and_then(|m| m.attr("identityType"))
        .unwrap_or("ApplicationPoolIdentity")
    {
        "LocalSystem" => r"NT AUTHORITY\SYSTEM".to_owned(),
        "LocalService" => r"NT AUTHORITY\LOCAL SERVICE".to_owned(),
        "NetworkService" => r"NT AUTHORITY\NETWORK SERVICE".to_owned(),
        "SpecificUser" => model.and_then(|m| m.attr("userName")).unwrap_or("").to_owned(),
        _ => format!(r"IIS AppPool\{name}"),
    };
    Some(Pool { name, identity })
}

/// URL path segments, without empty ones (`/a//b/` is `["a", "b"]`).
pub fn segments(path: &str) -> Vec<String> {
    path.split(['/', '\\'])
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_owned)
        .collect()
}

fn same_segments(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

fn starts_with(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && same_segments(&path[..prefix.len()], prefix)
}

impl Site {
    /// The physical folder (Windows form, unexpanded) that serves `url` (segments below the site root), through
    /// the deepest application and virtual directory containing it.
    pub fn physical(&self, url: &[String]) -> Option<String> {
        let mut best: Option<(usize, String)> = None;
        for app in &self.apps {
            let app_segments = segments(&app.path);
            if !starts_with(url, &app_segments) {
                continue;
            }
            for (vpath, physical) in &app.vdirs {
                let full: Vec<String> = app_segments.iter().cloned().chain(segments(vpath)).collect();
                if starts_with(url, &full) && best.as_ref().is_none_or(|(len, _)| full.len() >= *len) {
                    best = Some((full.len(), join(physical, &url[full.len()..].join("\\"))));
                }
            }
        }
        best.map(|(_, p)| p)
    }

    /// The application `url` belongs to (the one with the longest matching path).
    pub fn application(&self, url: &[String]) -> Option<&Application> {
        self.apps
            .iter()
            .filter(|a| starts_with(url, &segments(&a.path)))
            .max_by_key(|a| segments(&a.path).len())
    }
}

/// A set of sections that applies at one level: a file's top level, or one of its `<location>` tags.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub file: &'a ConfigFile,
    /// `<configuration>` (its non-`location` children count) or a `<location>`.
    pub container: &'a Element,
    /// 0 is the server (applicationHost.config), 1 the site root, 2 the first folder below it, ...
    pub depth: usize,
    /// Whether `file` is applicationHost.config.
    pub in_apphost: bool,
}

impl<'a> Scope<'a> {
    /// The element of section `path` (`system.webServer/handlers`) in this scope.
    pub fn section(&self, path: &str) -> Option<&'a Element> {
        let mut steps = path.split('/');
        let first = steps.next()?;
        let start = self
            .container
            .children
            .iter()
            .find(|c| c.name == first && (self.container.name == "location" || c.name != "location"))?;
        steps.try_fold(start, |element, step| element.child(step))
    }

    pub fn is_location(&self) -> bool {
        self.container.name == "location"
    }
}

/// The configuration chain of one URL: applicationHost.config plus the web.config of each level from the site
/// root down.
#[derive(Debug, Clone)]
pub struct Chain<'a> {
    pub apphost: &'a AppHost,
    /// `None` when the folder is not part of a known site: then only its own web.config and the server level apply.
    pub site: Option<&'a str>,
    /// URL segments below the site root of the deepest level (for an unknown site: below the folder).
    pub url: Vec<String>,
    /// The web.config of each level: index 0 is the site root (or the folder), index i the level `url[..i]`.
    pub web_configs: Vec<Option<&'a ConfigFile>>,
}

fn location_path(location: &Element) -> Vec<String> {
    segments(location.attr("path").unwrap_or(""))
}

impl<'a> Chain<'a> {
    /// Every scope that applies to the deepest level, in the order IIS applies them.
    pub fn scopes(&self) -> Vec<Scope<'a>> {
        let apphost = &self.apphost.file;
        let mut out = vec![Scope {
            file: apphost,
            container: &apphost.root,
            depth: 0,
            in_apphost: true,
        }];
        let site: Vec<String> = self.site.map(|s| vec![s.to_owned()]).unwrap_or_default();
        for depth in 0..=self.url.len() + 1 {
            // The level's full path as applicationHost.config's <location> tags name it.
            let level: Option<Vec<String>> = match depth {
                0 => Some(Vec::new()),
                _ if self.site.is_some() => Some(
                    site.iter()
                        .cloned()
                        .chain(self.url[..depth - 1].iter().cloned())
                        .collect(),
                ),
                _ => None,
            };
            if let Some(level) = level {
                for location in apphost.root.children_named("location") {
                    if same_segments(&location_path(location), &level) {
                        out.push(Scope {
                            file: apphost,
                            container: location,
                            depth,
                            in_apphost: true,
                        });
                    }
                }
            }
            if depth == 0 {
                continue;
            }
            // Parent web.config files' <location> tags naming this level, outermost first, then its own file.
            for owner in 0..depth {
                let Some(Some(file)) = self.web_configs.get(owner) else {
                    continue;
                };
                let relative = &self.url[owner..depth - 1];
                if owner + 1 == depth {
                    out.push(Scope {
                        file,
                        container: &file.root,
                        depth,
                        in_apphost: false,
                    });
                }
                for location in file.root.children_named("location") {
                    if same_segments(&location_path(location), relative) {
                        out.push(Scope {
                            file,
                            container: location,
                            depth,
                            in_apphost: false,
                        });
                    }
                }
            }
        }
        out
    }

    /// The section `path` merged along the chain.
    pub fn section(&self, path: &str, collection: Collection) -> Section<'a> {
        merge(&self.scopes(), path, collection)
    }
}

/// How a section's `<add>` entries are identified and ordered.
#[derive(Debug, Clone, Copy)]
pub struct Collection {
    /// The element that adds an entry (`add`; `application` in `<fastCgi>`).
    pub add: &'static str,
    /// The attributes that make an entry unique (compared ignoring case).
    pub key: &'static [&'static str],
    /// New entries of a deeper level go before the inherited ones (IIS's `mergeAppend="false"`: handlers).
    pub prepend: bool,
}

pub const HANDLERS: Collection = Collection {
    add: "add",
    key: &["name"],
    prepend: true,
};
pub const BY_NAME: Collection = Collection {
    add: "add",
    key: &["name"],
    prepend: false,
};
pub const FASTCGI: Collection = Collection {
    add: "application",
    key: &["fullPath", "arguments"],
    prepend: false,
};

/// One element of the configuration and the file it is in.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub element: &'a Element,
    pub file: &'a ConfigFile,
}

/// A section after merging.
#[derive(Debug, Clone, Default)]
pub struct Section<'a> {
    /// Each attribute's final value, with the element that set it.
    pub attrs: Vec<(String, String, Located<'a>)>,
    /// The collection's entries in effect, in order.
    pub items: Vec<Located<'a>>,
    /// Every element of the section along the chain, in order.
    pub definitions: Vec<Located<'a>>,
    /// Entries added while one with the same key was in effect (IIS refuses the file: 500.19), with the earlier one.
    pub duplicates: Vec<(Located<'a>, Located<'a>)>,
}

impl<'a> Section<'a> {
    pub fn attr(&self, name: &str) -> Option<(&str, Located<'a>)> {
        self.attrs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, at)| (v.as_str(), *at))
    }
}

/// An entry's key, for comparison: the key attributes, lower-cased (a missing one is "").
pub fn key_of(element: &Element, collection: Collection) -> Vec<String> {
    collection
        .key
        .iter()
        .map(|k| element.attr(k).unwrap_or("").to_lowercase())
        .collect()
}

/// Merges the section at `path` over `scopes`; nested collections (`environmentVariables`) are read from the
/// entry that is in effect, since they belong to it.
pub fn merge<'a>(scopes: &[Scope<'a>], path: &str, collection: Collection) -> Section<'a> {
    let mut section = Section::default();
    let mut last_depth = None;
    let mut insert_at = 0;
    for scope in scopes {
        let Some(element) = scope.section(path) else { continue };
        let at = |element: &'a Element| Located {
            element,
            file: scope.file,
        };
        section.definitions.push(at(element));
        for (name, value) in &element.attrs {
            section.attrs.retain(|(n, _, _)| n != name);
            section.attrs.push((name.clone(), value.clone(), at(element)));
        }
        if last_depth != Some(scope.depth) {
            insert_at = 0;
            last_depth = Some(scope.depth);
        }
        for child in &element.children {
            match child.name.as_str() {
                "clear" => {
                    section.items.clear();
                    insert_at = 0;
                }
                "remove" => {
                    let key = key_of(child, collection);
                    if let Some(index) = section.items.iter().position(|i| key_of(i.element, collection) == key) {
                        section.items.remove(index);
                        if index < insert_at {
                            insert_at -= 1;
                        }
                    }
                }
                name if name == collection.add => {
                    let key = key_of(child, collection);
                    if let Some(earlier) = section.items.iter().find(|i| key_of(i.element, collection) == key) {
                        section.duplicates.push((at(child), *earlier));
                        continue;
                    }
                    if collection.prepend {
                        section.items.insert(insert_at, at(child));
                        insert_at += 1;
                    } else {
                        section.items.push(at(child));
                    }
                }
                _ => {}
            }
        }
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> ConfigFile {
        ConfigFile::parse(path.into(), text.as_bytes()).unwrap()
    }

    const APPHOST: &str = r#"<configuration>
  <configSections><sectionGroup name="system.webServer"><section name="handlers" overrideModeDefault="Deny"/></sectionGroup></configSections>
  <system.applicationHost><sites>
    <site name="S" id="1"><application path="/"><virtualDirectory path="/" physicalPath="%SystemDrive%\www"/></application>
      <application path="/app" applicationPool="P"><virtualDirectory path="/" physicalPath="D:\app"/><virtualDirectory path="/media" physicalPath="E:\media"/></application></site>
  </sites><applicationPools><add name="P"><processModel identityType="NetworkService"/></add></applicationPools></system.applicationHost>
  <location path="" overrideMode="Allow"><system.webServer><handlers>
    <add name="CGI" path="*.cgi"/><add name="StaticFile" path="*"/></handlers></system.webServer></location>
  <location path="S/app/static"><system.webServer><handlers><add name="deep" path="*.x"/></handlers></system.webServer></location>
</configuration>"#;

    #[test]
    fn sites_sections_and_physical_paths() {
        let host = AppHost::new(file("apphost", APPHOST));
        assert_eq!(
            host.section("system.webServer/HANDLERS").unwrap().override_mode_default,
            OverrideMode::Deny
        );
        let site = host.site("s").unwrap();
        assert_eq!(site.physical(&segments("/")).unwrap(), r"%SystemDrive%\www");
        assert_eq!(site.physical(&segments("/app/x")).unwrap(), r"D:\app\x");
        assert_eq!(site.physical(&segments("/App/Media/a")).unwrap(), r"E:\media\a");
        assert_eq!(site.physical(&segments("/other")).unwrap(), r"%SystemDrive%\www\other");
        assert_eq!(site.application(&segments("/app/x")).unwrap().pool, "P");
        assert_eq!(host.pools[0].identity, r"NT AUTHORITY\NETWORK SERVICE");
        let env = |n: &str| (n == "SystemDrive").then(|| "C:".to_owned());
        assert_eq!(expand(r"%SystemDrive%\www\%nope%\100%", &env), r"C:\www\%nope%\100%");
    }

    #[test]
    fn handlers_of_deeper_levels_come_first_and_locations_apply() {
        let host = AppHost::new(file("apphost", APPHOST));
        let root = file(
            "root",
            r#"<configuration><system.webServer><handlers><add name="py" path="*"/></handlers></system.webServer>
            <location path="app/static"><system.webServer><handlers><remove name="py"/></handlers></system.webServer></location></configuration>"#,
        );
        let app = file(
            "app",
            r#"<configuration><system.webServer><handlers><add name="a1" path="*.a"/><add name="a2" path="*.b"/><add name="CGI" path="*"/></handlers></system.webServer></configuration>"#,
        );
        let names = |url: &str, configs: Vec<Option<&ConfigFile>>| {
            let chain = Chain {
                apphost: &host,
                site: Some("S"),
                url: segments(url),
                web_configs: configs,
            };
            let section = chain.section("system.webServer/handlers", HANDLERS);
            let names: Vec<String> = section
                .items
                .iter()
                .map(|i| i.element.attr("name").unwrap().to_owned())
                .collect();
            (names, section.duplicates.len())
        };
        assert_eq!(
            names("/", vec![Some(&root)]),
            (vec!["py".into(), "CGI".into(), "StaticFile".into()], 0)
        );
        assert_eq!(
            names("/app", vec![Some(&root), Some(&app)]),
            (
                vec!["a1".into(), "a2".into(), "py".into(), "CGI".into(), "StaticFile".into()],
                1
            )
        );
        assert_eq!(
            names("/app/static", vec![Some(&root), Some(&app), None]),
            (
                vec![
                    "deep".into(),
                    "a1".into(),
                    "a2".into(),
                    "CGI".into(),
                    "StaticFile".into()
                ],
                1
            )
        );
    }
}
