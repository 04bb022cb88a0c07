//! The results page for analysts (`/ui`): a static page embedded in the binary, so it works
//! offline and in the container without extra files. It asks for the API key once, keeps
//! it in the tab's `sessionStorage` and sends it as `Authorization: Bearer` to the JSON
//! API; the page itself needs no key. Charts are drawn by Chart.js, vendored from npm by
//! `scripts/ui-assets` (see README "Results page").

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
/// Number formats and table columns, shared by the results table and the breakdown.
const TABLES_JS: &str = include_str!("../../ui/tables.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");
/// Chart.js's UMD build, byte for byte from the npm package pinned in `api/ui/package-lock.json`.
pub const CHART_JS: &str = include_str!("../../ui/vendor/chart.umd.js");

/// Only our own files, no inline script, no other origin: the key typed into the page
/// can go nowhere but this API.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

pub fn router() -> Router {
    let index = || async { asset("text/html; charset=utf-8", INDEX_HTML) };
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/tables.js", get(|| async { asset("text/javascript; charset=utf-8", TABLES_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/ui/vendor/chart.umd.js", get(|| async { asset("text/javascript; charset=utf-8", CHART_JS) }))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// The vendored Chart.js is the file `scripts/ui-assets` took from the package that
    /// `package-lock.json` pins (npm ci checked the tarball's sha512 against the lock);
    /// `scripts/ui-assets --check` in CI re-installs it and compares byte for byte. This
    /// catches, offline, a hand-edited vendor file or a lock bumped without re-vendoring.
    #[test]
    fn vendored_chart_js_is_the_locked_npm_package() {
        let sources = include_str!("../../ui/vendor/SOURCES");
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../../ui/package-lock.json")).expect("package-lock.json");
        let package: serde_json::Value =
            serde_json::from_str(include_str!("../../ui/package.json")).expect("package.json");
        let line = sources.lines().find(|l| l.starts_with("chart.umd.js ")).expect("chart.umd.js in SOURCES");
        let fields: Vec<&str> = line.split(' ').collect();
        let [_, sha256, spec, integrity] = fields[..] else { panic!("bad SOURCES line {line}") };
        let digest: String = Sha256::digest(CHART_JS.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, sha256, "api/ui/vendor/chart.umd.js was edited by hand: run scripts/ui-assets");
        let locked = &lock["packages"]["node_modules/chart.js"];
        let version = locked["version"].as_str().expect("locked version");
        assert_eq!(spec, format!("chart.js@{version}"), "the lock moved: run scripts/ui-assets");
        assert_eq!(
            integrity,
            locked["integrity"].as_str().expect("integrity"),
            "the lock moved: run scripts/ui-assets"
        );
        assert_eq!(package["dependencies"]["chart.js"], version, "package.json pins the locked version");
        assert!(CHART_JS.contains(&format!("Chart.js v{version}")), "the file is Chart.js {version}");
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        for src in ["/ui/style.css", "/ui/vendor/chart.umd.js", "/ui/tables.js", "/ui/app.js"] {
            assert!(INDEX_HTML.contains(src), "{src}");
        }
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"), "no other origin: works offline");
        assert!(!APP_JS.contains("?key=") && APP_JS.contains("Authorization: `Bearer"), "key only in a header");
    }
}
