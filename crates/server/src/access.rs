//! Who may call which route: one table, and the pure decision over it.
//!
//! Every route under `/api/v1` is listed here with what it needs. The authorization layer
//! looks the matched route up before any handler runs, so a route missing from the table is
//! refused to everyone (fail closed) rather than open to everyone.

use axum::http::Method;
use baton_api::Role;
use baton_store::Principal;

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A person's token with at least this role.
    Role(Role),
    /// The enrollment token (registration only).
    Enroll,
    /// A registered agent's own token.
    Agent,
}

/// Every API route (method, path pattern under `/api/v1`) and what it needs.
pub const ROUTES: &[(Method, &str, Access)] = &[
    (Method::GET, "/workflows", Access::Role(Role::Viewer)),
    // Operators may send a file only when it is the latest version as it stands, so that
    // `baton run FILE` works for them; a change needs an admin (checked by the handler).
    (Method::POST, "/workflows", Access::Role(Role::Operator)),
    (Method::GET, "/workflows/{name}", Access::Role(Role::Viewer)),
    (
        Method::GET,
        "/workflows/{name}/versions/{version}",
        Access::Role(Role::Viewer),
    ),
    (Method::GET, "/runs", Access::Role(Role::Viewer)),
    (Method::POST, "/runs", Access::Role(Role::Operator)),
    (Method::GET, "/runs/{id}", Access::Role(Role::Viewer)),
    (
        Method::POST,
        "/runs/{id}/cancel",
        Access::Role(Role::Operator),
    ),
    (
        Method::POST,
        "/runs/{id}/retry",
        Access::Role(Role::Operator),
    ),
    (Method::GET, "/runs/{id}/logs", Access::Role(Role::Viewer)),
    (
        Method::GET,
        "/runs/{id}/artifacts",
        Access::Role(Role::Viewer),
    ),
    (
        Method::GET,
        "/runs/{id}/artifacts/{node}/{attempt}/{*path}",
        Access::Role(Role::Viewer),
    ),
    (Method::GET, "/agents", Access::Role(Role::Viewer)),
    (Method::GET, "/resources", Access::Role(Role::Viewer)),
    (Method::GET, "/tokens", Access::Role(Role::Admin)),
    (Method::POST, "/tokens", Access::Role(Role::Admin)),
    (
        Method::POST,
        "/tokens/{name}/revoke",
        Access::Role(Role::Admin),
    ),
    (Method::GET, "/secrets", Access::Role(Role::Admin)),
    (Method::PUT, "/secrets/{name}", Access::Role(Role::Admin)),
    (Method::DELETE, "/secrets/{name}", Access::Role(Role::Admin)),
    (Method::GET, "/audit", Access::Role(Role::Admin)),
    (Method::POST, "/agent/register", Access::Enroll),
    (Method::POST, "/agent/claim", Access::Agent),
    (Method::POST, "/agent/heartbeat", Access::Agent),
    (Method::POST, "/agent/attempts/{id}/start", Access::Agent),
    (Method::POST, "/agent/attempts/{id}/report", Access::Agent),
    (Method::POST, "/agent/reports", Access::Agent),
    (Method::POST, "/agent/attempts/{id}/logs", Access::Agent),
    (
        Method::PUT,
        "/agent/attempts/{id}/artifacts/{*path}",
        Access::Agent,
    ),
    (Method::POST, "/agent/deregister", Access::Agent),
];

/// What a route at `path` (a pattern under `/api/v1`) needs when called with `method`;
/// `None` for a route the table does not know.
pub fn access_for(method: &Method, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| m == method && *p == path)
        .map(|(_, _, access)| *access)
}

/// Why a caller is refused: a `403` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// Whether `principal` may call a route that needs `access`.
pub fn decide(access: Access, principal: &Principal) -> Result<(), Denied> {
    match (access, principal) {
        (Access::Role(need), Principal::User { role, .. }) if *role >= need => Ok(()),
        (Access::Role(need), Principal::User { name, role }) => Err(Denied(format!(
            "this route needs the {need} role; token {name:?} has {role}"
        ))),
        (Access::Role(_), _) => Err(Denied(
            "this route needs a person's token (the admin token or a named token), \
             not an agent's or the enrollment token"
                .into(),
        )),
        (Access::Enroll, Principal::Enroll) => Ok(()),
        (Access::Enroll, _) => Err(Denied(
            "registration needs the enrollment token (agent.token)".into(),
        )),
        (Access::Agent, Principal::Agent { .. }) => Ok(()),
        (Access::Agent, _) => Err(Denied("this route needs an agent's own token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> Principal {
        Principal::User {
            name: "t".into(),
            role,
        }
    }

    #[test]
    fn roles_include_the_ones_below_them_and_nothing_crosses_kinds() {
        for need in Role::ALL {
            for have in Role::ALL {
                assert_eq!(
                    decide(Access::Role(need), &user(have)).is_ok(),
                    have >= need,
                    "{have} on a {need} route"
                );
            }
        }
        let agent = Principal::Agent {
            agent_id: "a".into(),
        };
        assert!(decide(Access::Role(Role::Viewer), &agent).is_err());
        assert!(decide(Access::Role(Role::Viewer), &Principal::Enroll).is_err());
        assert!(decide(Access::Agent, &agent).is_ok());
        assert!(decide(Access::Agent, &Principal::admin()).is_err());
        assert!(decide(Access::Agent, &Principal::Enroll).is_err());
        assert!(decide(Access::Enroll, &Principal::Enroll).is_ok());
        assert!(decide(Access::Enroll, &Principal::admin()).is_err());
        assert!(decide(Access::Enroll, &agent).is_err());
    }

    #[test]
    fn every_route_is_listed_once() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i].iter().any(|(m2, p2, _)| m2 == m && p2 == p),
                "{m} {p} listed twice"
            );
        }
        assert_eq!(
            access_for(&Method::DELETE, "/runs/{id}"),
            None,
            "unknown routes have no access"
        );
    }
}
