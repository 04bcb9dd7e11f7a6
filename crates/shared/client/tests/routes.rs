//! Drift check: the client's route table and the service's OpenAPI document name the same
//! operations. A route the service adds without a client method, or a client route the service
//! does not serve (renamed, removed, misspelt), fails here with its name.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferro_client::routes::service::ROUTES;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn document_operations() -> BTreeSet<(String, String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../openapi/ferrosphere.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let document: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("{} has no paths", path.display()));
    let mut operations = BTreeSet::new();
    for (template, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or("(no operationId)");
                operations.insert((method.to_string(), template.clone(), id.to_string()));
            }
        }
    }
    operations
}

#[test]
fn every_documented_operation_has_a_client_route_and_no_other() {
    let documented = document_operations();
    assert!(
        documented.len() > 50,
        "the document lists {} operations",
        documented.len()
    );
    let client: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(_, r)| (r.verb.as_str().to_string(), r.template.to_string()))
        .collect();
    assert_eq!(
        client.len(),
        ROUTES.len(),
        "a route is in the client's table twice"
    );
    let missing: Vec<String> = documented
        .iter()
        .filter(|(m, t, _)| !client.contains(&(m.clone(), t.clone())))
        .map(|(m, t, id)| format!("{id}: {} {t}", m.to_uppercase()))
        .collect();
    let served: BTreeSet<(String, String)> = documented
        .iter()
        .map(|(m, t, _)| (m.clone(), t.clone()))
        .collect();
    let invented: Vec<String> = ROUTES
        .iter()
        .filter(|(_, r)| !served.contains(&(r.verb.as_str().to_string(), r.template.to_string())))
        .map(|(name, r)| format!("{name}: {} {}", r.verb.as_str().to_uppercase(), r.template))
        .collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "the client and openapi/ferrosphere.json disagree.\n\
         Documented operations without a client route (add a route to routes.rs and a method):\n  \
         {}\nClient routes the document does not have:\n  {}",
        missing.join("\n  "),
        invented.join("\n  ")
    );
}
