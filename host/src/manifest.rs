//! The subset of the Spin application manifest (`spin_manifest_version = 2`) that dubhost runs:
//! application variables, HTTP triggers, components with their sources, outbound allowlists and
//! variable templates. Unknown keys are ignored, as Spin ignores keys for features it lacks.

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that override application variables (Spin's env provider).
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// The manifest as written on disk.
#[derive(Debug, Deserialize)]
pub struct RawManifest {
    /// Must be 2.
    pub spin_manifest_version: u32,
    /// `[application]`.
    #[serde(default)]
    pub application: RawApplication,
    /// `[variables]`: application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, RawVariable>,
    /// `[[trigger.<type>]]`.
    #[serde(default)]
    pub trigger: RawTriggers,
    /// `[component.<id>]`.
    #[serde(default)]
    pub component: BTreeMap<String, RawComponent>,
}

/// `[application]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawApplication {
    /// Application name.
    #[serde(default)]
    pub name: String,
}

/// One application variable.
#[derive(Debug, Default, Deserialize)]
pub struct RawVariable {
    /// Value used when no provider supplies one.
    pub default: Option<String>,
    /// A provider must supply a value.
    #[serde(default)]
    pub required: bool,
    // `secret = true` needs no handling: dubhost never logs variable values.
}

/// `[[trigger.*]]` tables; dubhost runs HTTP triggers only.
#[derive(Debug, Default, Deserialize)]
pub struct RawTriggers {
    /// `[[trigger.http]]`.
    #[serde(default)]
    pub http: Vec<RawHttpTrigger>,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Deserialize)]
pub struct RawHttpTrigger {
    /// Route pattern: `/exact` or `/prefix/...`.
    pub route: String,
    /// Component id.
    pub component: String,
}

/// One `[component.<id>]`.
#[derive(Debug, Deserialize)]
pub struct RawComponent {
    /// Path of the `.wasm` file, relative to the manifest's directory.
    pub source: String,
    /// Outbound HTTP allowlist: `scheme://host:port` patterns.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: values may use `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    // `dependencies`, `build`, `files`, ... are ignored like any unknown key: dubhost provides
    // `dub:media` natively instead of composing the media component.
}

/// A loaded application with every variable resolved.
#[derive(Debug, Clone)]
pub struct App {
    /// Application name.
    pub name: String,
    /// HTTP routes in manifest order.
    pub routes: Vec<(String, String)>,
    /// Components referenced by a trigger, by id.
    pub components: HashMap<String, ComponentConfig>,
}

/// A component that a trigger runs.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// Component id.
    pub id: String,
    /// Absolute or manifest-relative-resolved path of its wasm.
    pub source: PathBuf,
    /// Outbound allowlist patterns as written.
    pub allowed_outbound_hosts: Vec<String>,
    /// Resolved component variables (name → value). Values are never logged: some come from
    /// secret application variables.
    pub variables: HashMap<String, String>,
    /// Key-value store labels the component may open (dubhost provides `default`).
    pub key_value_stores: Vec<String>,
}

/// Where application variable overrides come from, highest priority first.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--variable name=value` on the command line.
    pub cli: HashMap<String, String>,
    /// The process environment (`SPIN_VARIABLE_<NAME>`).
    pub env: HashMap<String, String>,
}

impl Overrides {
    /// Overrides from the command line plus the current process environment.
    pub fn from_process(cli: HashMap<String, String>) -> Self {
        Self {
            cli,
            env: std::env::vars().collect(),
        }
    }

    fn lookup(&self, name: &str) -> Option<&String> {
        self.cli.get(name).or_else(|| {
            self.env
                .get(&format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()))
        })
    }
}

/// Read and resolve a manifest file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<App> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    parse(&text, &dir, overrides).with_context(|| format!("in manifest {}", path.display()))
}

/// Parse manifest text; component sources resolve against `dir`.
pub fn parse(text: &str, dir: &Path, overrides: &Overrides) -> Result<App> {
    let raw: RawManifest = toml::from_str(text).context("invalid manifest TOML")?;
    ensure!(
        raw.spin_manifest_version == 2,
        "unsupported spin_manifest_version {} (dubhost reads version 2)",
        raw.spin_manifest_version
    );

    let app_vars = resolve_app_variables(&raw.variables, overrides)?;

    ensure!(
        !raw.trigger.http.is_empty(),
        "the manifest has no [[trigger.http]]: nothing to serve"
    );
    let mut routes = Vec::new();
    let mut components = HashMap::new();
    for trigger in &raw.trigger.http {
        crate::router::validate_route(&trigger.route)
            .with_context(|| format!("trigger for component `{}`", trigger.component))?;
        if routes.iter().any(|(r, _)| r == &trigger.route) {
            bail!("duplicate route `{}`", trigger.route);
        }
        let raw_component = raw.component.get(&trigger.component).ok_or_else(|| {
            anyhow!(
                "route `{}` names component `{}`, which is not defined",
                trigger.route,
                trigger.component
            )
        })?;
        routes.push((trigger.route.clone(), trigger.component.clone()));
        if !components.contains_key(&trigger.component) {
            let config = resolve_component(&trigger.component, raw_component, dir, &app_vars)?;
            components.insert(trigger.component.clone(), config);
        }
    }
    Ok(App {
        name: raw.application.name,
        routes,
        components,
    })
}

/// A resolved application variable.
#[derive(Debug, Clone)]
struct AppVar {
    value: Option<String>,
}

fn resolve_app_variables(
    vars: &BTreeMap<String, RawVariable>,
    overrides: &Overrides,
) -> Result<HashMap<String, AppVar>> {
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for (name, var) in vars {
        validate_variable_name(name).with_context(|| format!("application variable `{name}`"))?;
        ensure!(
            !(var.required && var.default.is_some()),
            "application variable `{name}` is required and has a default: choose one"
        );
        let value = overrides
            .lookup(name)
            .cloned()
            .or_else(|| var.default.clone());
        if var.required && value.is_none() {
            missing.push(format!(
                "`{name}` (set {ENV_PREFIX}{})",
                name.to_ascii_uppercase()
            ));
        }
        out.insert(name.clone(), AppVar { value });
    }
    if !missing.is_empty() {
        bail!(
            "required application variable(s) without a value: {}",
            missing.join(", ")
        );
    }
    Ok(out)
}

fn resolve_component(
    id: &str,
    raw: &RawComponent,
    dir: &Path,
    app_vars: &HashMap<String, AppVar>,
) -> Result<ComponentConfig> {
    ensure!(
        !raw.source.is_empty(),
        "component `{id}` has an empty source"
    );
    let source = dir.join(&raw.source);
    for pattern in &raw.allowed_outbound_hosts {
        crate::outbound::HostPattern::parse(pattern)
            .with_context(|| format!("component `{id}`: allowed_outbound_hosts"))?;
    }
    let mut variables = HashMap::new();
    for (name, template) in &raw.variables {
        validate_variable_name(name)
            .with_context(|| format!("component `{id}` variable `{name}`"))?;
        let parts = parse_template(template)
            .with_context(|| format!("component `{id}` variable `{name}`"))?;
        let mut value = String::new();
        for part in parts {
            match part {
                TemplatePart::Literal(s) => value.push_str(s),
                TemplatePart::Variable(var) => {
                    let app_var = app_vars.get(var).ok_or_else(|| {
                        anyhow!(
                            "component `{id}` variable `{name}` refers to `{{{{ {var} }}}}`, \
                             which is not an application variable"
                        )
                    })?;
                    // An optional variable with neither default nor override expands to "".
                    value.push_str(app_var.value.as_deref().unwrap_or_default());
                }
            }
        }
        variables.insert(name.clone(), value);
    }
    Ok(ComponentConfig {
        id: id.to_string(),
        source,
        allowed_outbound_hosts: raw.allowed_outbound_hosts.clone(),
        variables,
        key_value_stores: raw.key_value_stores.clone(),
    })
}

/// Spin's variable name rule: lower-case ASCII letters, digits and single underscores,
/// starting with a letter and not ending with an underscore.
pub fn validate_variable_name(name: &str) -> Result<()> {
    let ok = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.contains("__")
        && !name.ends_with('_');
    ensure!(
        ok,
        "invalid variable name `{name}`: use lower-case letters, digits and single underscores, \
         starting with a letter"
    );
    Ok(())
}

/// A piece of a `{{ var }}` template.
#[derive(Debug, PartialEq, Eq)]
pub enum TemplatePart<'a> {
    /// Text copied as is.
    Literal(&'a str),
    /// An application variable reference.
    Variable(&'a str),
}

/// Split a template into literal text and `{{ name }}` references.
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(TemplatePart::Literal(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| anyhow!("unclosed `{{{{` in template `{template}`"))?;
        let name = after[..close].trim();
        validate_variable_name(name).with_context(|| format!("in template `{template}`"))?;
        parts.push(TemplatePart::Variable(name));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        bail!("stray `}}}}` in template `{template}`");
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "dub-edge"
version = "0.1.0"

[variables]
origins = { default = "http://127.0.0.1:8081" }
signing_key = { required = true, secret = true }
stt_url = { default = "http://127.0.0.1:8090" }
api_key = { default = "", secret = true }
deadline_fraction = { default = "0.8" }

[[trigger.http]]
route = "/..."
component = "edge"

[component.edge]
source = "build/dub_edge.wasm"
allowed_outbound_hosts = ["http://127.0.0.1:*", "http://localhost:*"]
key_value_stores = ["default"]

[component.edge.variables]
origins = "{{ origins }}"
signing_key = "{{signing_key}}"
stt_url = "{{ stt_url }}/v1"
auth = "Bearer {{ api_key }}"
deadline_fraction = "{{ deadline_fraction }}"
literal = "plain"

[component.edge.dependencies]
"dub:media/types" = { path = "build/dub_media.wasm" }

[component.edge.build]
command = "cargo build"

[component.media]
source = "build/dub_media.wasm"
"#;

    fn overrides(env: &[(&str, &str)], cli: &[(&str, &str)]) -> Overrides {
        Overrides {
            cli: cli
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_routes_sources_and_templates() {
        let app = parse(
            MANIFEST,
            Path::new("/srv/app"),
            &overrides(&[("SPIN_VARIABLE_SIGNING_KEY", "k3y")], &[]),
        )
        .unwrap();
        assert_eq!(app.name, "dub-edge");
        assert_eq!(app.routes, vec![("/...".to_string(), "edge".to_string())]);
        // Only triggered components are loaded; `media` is a dependency.
        assert_eq!(app.components.len(), 1);
        let edge = &app.components["edge"];
        assert_eq!(edge.source, Path::new("/srv/app/build/dub_edge.wasm"));
        assert_eq!(
            edge.allowed_outbound_hosts,
            vec!["http://127.0.0.1:*", "http://localhost:*"]
        );
        assert_eq!(edge.variables["origins"], "http://127.0.0.1:8081");
        assert_eq!(edge.variables["signing_key"], "k3y");
        assert_eq!(edge.variables["stt_url"], "http://127.0.0.1:8090/v1");
        assert_eq!(edge.variables["auth"], "Bearer ");
        assert_eq!(edge.key_value_stores, vec!["default"]);
        assert_eq!(edge.variables["literal"], "plain");
        assert_eq!(edge.variables["deadline_fraction"], "0.8");
    }

    #[test]
    fn env_overrides_default_and_cli_overrides_env() {
        let app = parse(
            MANIFEST,
            Path::new("."),
            &overrides(
                &[
                    ("SPIN_VARIABLE_SIGNING_KEY", "from-env"),
                    ("SPIN_VARIABLE_ORIGINS", "http://o.example:9000"),
                    // Spin's env provider upper-cases the name; lower-case is not read.
                    ("SPIN_VARIABLE_stt_url", "ignored"),
                ],
                &[("signing_key", "from-cli")],
            ),
        )
        .unwrap();
        let edge = &app.components["edge"];
        assert_eq!(edge.variables["origins"], "http://o.example:9000");
        assert_eq!(edge.variables["signing_key"], "from-cli");
        assert_eq!(edge.variables["stt_url"], "http://127.0.0.1:8090/v1");
    }

    #[test]
    fn missing_required_variable_is_a_clear_error() {
        let err = parse(MANIFEST, Path::new("."), &Overrides::default()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("`signing_key`"), "{msg}");
        assert!(msg.contains("SPIN_VARIABLE_SIGNING_KEY"), "{msg}");
    }

    #[test]
    fn unknown_template_variable_and_bad_manifests_fail() {
        let bad_ref = MANIFEST.replace("\"{{ origins }}\"", "\"{{ nope }}\"");
        let msg = format!(
            "{:#}",
            parse(
                &bad_ref,
                Path::new("."),
                &overrides(&[("SPIN_VARIABLE_SIGNING_KEY", "k")], &[])
            )
            .unwrap_err()
        );
        assert!(msg.contains("{{ nope }}"), "{msg}");

        let v1 = MANIFEST.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(parse(&v1, Path::new("."), &Overrides::default()).is_err());

        let missing_component = MANIFEST.replace("component = \"edge\"", "component = \"nope\"");
        let msg = format!(
            "{:#}",
            parse(
                &missing_component,
                Path::new("."),
                &overrides(&[("SPIN_VARIABLE_SIGNING_KEY", "k")], &[])
            )
            .unwrap_err()
        );
        assert!(msg.contains("`nope`"), "{msg}");

        let bad_host = MANIFEST.replace("\"http://localhost:*\"", "\"localhost\"");
        assert!(
            parse(
                &bad_host,
                Path::new("."),
                &overrides(&[("SPIN_VARIABLE_SIGNING_KEY", "k")], &[])
            )
            .is_err()
        );

        let both = MANIFEST.replace(
            "signing_key = { required = true, secret = true }",
            "signing_key = { required = true, default = \"x\" }",
        );
        assert!(parse(&both, Path::new("."), &Overrides::default()).is_err());
    }

    #[test]
    fn templates_split_and_reject_malformed() {
        assert_eq!(
            parse_template("a{{ b }}c{{d}}").unwrap(),
            vec![
                TemplatePart::Literal("a"),
                TemplatePart::Variable("b"),
                TemplatePart::Literal("c"),
                TemplatePart::Variable("d"),
            ]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
        assert!(parse_template("{{ open").is_err());
        assert!(parse_template("close }}").is_err());
        assert!(parse_template("{{ Upper }}").is_err());
        assert!(parse_template("{{ }}").is_err());
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        for ok in ["a", "stt_url", "v2", "deadline_min_ms"] {
            validate_variable_name(ok).unwrap();
        }
        for bad in ["", "A", "_a", "a_", "a__b", "1a", "a-b", "a.b"] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
    }
}
