//! Alert rules over the stream of decisions this service makes (docs/QUERY.md, "Alerts"):
//! repeated denials of one subject within a window, any break-glass use, access outside
//! configured hours, a query that can see more than N tenants, a result of more than N rows.
//! Each alert becomes an audit event (`action` = `alert.<rule>`) on the alerts topic.
//!
//! The rules see the decisions of this instance; several instances behind a balancer each
//! count their own (a deployment that needs fleet-wide counts runs them over the sealed
//! `access_log` instead).

use std::collections::{BTreeMap, VecDeque};

use serde::Deserialize;

use crate::decision_log::{Completion, Facts};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Denials of one subject within `denials_window_secs` that raise `repeated_denials`
    /// (0 turns the rule off).
    pub denials: usize,
    pub denials_window_secs: u64,
    /// Raise `break_glass` on every allowed break-glass query.
    pub break_glass: bool,
    /// Business hours, UTC, `[start, end)` in whole hours (e.g. `[7, 19]`); an allowed query
    /// outside them raises `outside_hours`. Absent: the rule is off.
    pub hours_utc: Option<[u32; 2]>,
    /// A query that can see rows of more than this many tenants raises `many_tenants`
    /// (0: off).
    pub max_tenants: usize,
    /// A result of more than this many rows raises `large_result` (0: off).
    pub max_rows: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            denials: 5,
            denials_window_secs: 300,
            break_glass: true,
            hours_utc: None,
            max_tenants: 3,
            max_rows: 50_000,
        }
    }
}

impl AlertsConfig {
    pub fn check(&self) -> Result<(), String> {
        if let Some([start, end]) = self.hours_utc
            && (start > 23 || end > 24 || start >= end)
        {
            return Err(format!(
                "[query.decision_log.alerts] hours_utc = [{start}, {end}]: use [start, end) with 0 <= start < end <= 24"
            ));
        }
        if self.denials > 0 && self.denials_window_secs == 0 {
            return Err(
                "[query.decision_log.alerts] denials_window_secs must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// One alert, ready to become an audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `repeated_denials`, `break_glass`, `outside_hours`, `many_tenants`, `large_result`.
    pub rule: &'static str,
    pub subject: String,
    pub tenant: Option<String>,
    pub decision_ids: Vec<String>,
    pub message: String,
    pub threshold: u64,
    pub observed: u64,
}

pub struct Rules {
    cfg: AlertsConfig,
    /// Per subject: recent denials (time µs, decision id).
    denials: BTreeMap<String, VecDeque<(i64, String)>>,
}

fn subject_of(f: &Facts) -> String {
    match &f.identity {
        Some(id) => id.subject.clone(),
        None => format!("anonymous@{}", f.client_ip),
    }
}

impl Rules {
    pub fn new(cfg: AlertsConfig) -> Self {
        Rules {
            cfg,
            denials: BTreeMap::new(),
        }
    }

    fn alert(&self, rule: &'static str, f: &Facts, message: String, t: u64, o: u64) -> Alert {
        Alert {
            rule,
            subject: subject_of(f),
            tenant: f.identity.as_ref().and_then(|i| i.tenant.clone()),
            decision_ids: vec![f.decision_id.clone()],
            message,
            threshold: t,
            observed: o,
        }
    }

    /// The alerts one decision raises. `allowed`: the query goes ahead; `code`: why not.
    pub fn on_decision(&mut self, f: &Facts, allowed: bool, code: Option<&str>) -> Vec<Alert> {
        let mut out = Vec::new();
        let subject = subject_of(f);
        if matches!(code, Some("denied" | "unauthenticated" | "policy_error"))
            && self.cfg.denials > 0
        {
            let window_us = self.cfg.denials_window_secs as i64 * 1_000_000;
            let q = self.denials.entry(subject.clone()).or_default();
            q.push_back((f.at_us, f.decision_id.clone()));
            while q.front().is_some_and(|(t, _)| *t < f.at_us - window_us) {
                q.pop_front();
            }
            if q.len() >= self.cfg.denials {
                let ids: Vec<String> = q.drain(..).map(|(_, id)| id).collect();
                let mut a = self.alert(
                    "repeated_denials",
                    f,
                    format!(
                        "{subject} was refused {} times within {} s",
                        ids.len(),
                        self.cfg.denials_window_secs
                    ),
                    self.cfg.denials as u64,
                    ids.len() as u64,
                );
                a.decision_ids = ids;
                out.push(a);
            }
        }
        if !allowed {
            return out;
        }
        if self.cfg.break_glass && f.flags.iter().any(|x| x == "break_glass") {
            out.push(self.alert(
                "break_glass",
                f,
                format!(
                    "{subject} used break-glass access: {}",
                    f.justification.as_deref().unwrap_or("")
                ),
                1,
                1,
            ));
        }
        if let Some([start, end]) = self.cfg.hours_utc {
            let hour = ((f.at_us.div_euclid(3_600_000_000)).rem_euclid(24)) as u32;
            if hour < start || hour >= end {
                out.push(self.alert(
                    "outside_hours",
                    f,
                    format!("{subject} queried at {hour}:xx UTC, outside [{start}, {end})"),
                    u64::from(start),
                    u64::from(hour),
                ));
            }
        }
        out
    }

    /// The alerts a finished query raises.
    pub fn on_completion(&mut self, f: &Facts, done: &Completion) -> Vec<Alert> {
        let mut out = Vec::new();
        let subject = subject_of(f);
        if self.cfg.max_tenants > 0 && done.tenants.len() > self.cfg.max_tenants {
            out.push(self.alert(
                "many_tenants",
                f,
                format!(
                    "{subject}'s query could see rows of {} tenants (more than {})",
                    done.tenants.len(),
                    self.cfg.max_tenants
                ),
                self.cfg.max_tenants as u64,
                done.tenants.len() as u64,
            ));
        }
        if self.cfg.max_rows > 0 && done.rows > self.cfg.max_rows {
            out.push(self.alert(
                "large_result",
                f,
                format!(
                    "{subject}'s query returned {} rows (more than {})",
                    done.rows, self.cfg.max_rows
                ),
                self.cfg.max_rows,
                done.rows,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{AuthKind, Identity};

    fn facts(subject: &str, at_s: i64) -> Facts {
        Facts {
            decision_id: format!("d-{subject}-{at_s}"),
            at_us: at_s * 1_000_000,
            client_ip: "127.0.0.1".into(),
            identity: Some(Identity {
                subject: subject.into(),
                roles: vec![],
                tenant: Some("acme".into()),
                auth: AuthKind::ApiKey,
            }),
            ..Facts::default()
        }
    }

    fn rules() -> Rules {
        Rules::new(AlertsConfig {
            denials: 3,
            denials_window_secs: 60,
            break_glass: true,
            hours_utc: Some([7, 19]),
            max_tenants: 2,
            max_rows: 100,
        })
    }

    #[test]
    fn repeated_denials_fire_at_the_threshold_within_the_window_only() {
        let mut r = rules();
        // Two denials, then a third outside the window: below the threshold.
        assert!(
            r.on_decision(&facts("eve", 1000), false, Some("denied"))
                .is_empty()
        );
        assert!(
            r.on_decision(&facts("eve", 1010), false, Some("denied"))
                .is_empty()
        );
        assert!(
            r.on_decision(&facts("eve", 1100), false, Some("denied"))
                .is_empty()
        );
        // Another subject's denials do not count for eve; bad SQL is not a denial.
        assert!(
            r.on_decision(&facts("bob", 1101), false, Some("denied"))
                .is_empty()
        );
        assert!(
            r.on_decision(&facts("eve", 1102), false, Some("bad_sql"))
                .is_empty()
        );
        assert!(
            r.on_decision(&facts("eve", 1105), false, Some("denied"))
                .is_empty()
        );
        let a = r.on_decision(&facts("eve", 1110), false, Some("unauthenticated"));
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].rule, "repeated_denials");
        assert_eq!(
            a[0].decision_ids,
            ["d-eve-1100", "d-eve-1105", "d-eve-1110"]
        );
        // Counting starts again after an alert.
        assert!(
            r.on_decision(&facts("eve", 1111), false, Some("denied"))
                .is_empty()
        );
    }

    #[test]
    fn break_glass_hours_tenants_and_rows() {
        let mut r = rules();
        let noon = 12 * 3600;
        let mut f = facts("bob", noon);
        assert!(r.on_decision(&f, true, None).is_empty());
        f.flags = vec!["break_glass".into()];
        let a = r.on_decision(&f, true, None);
        assert_eq!(
            a.iter().map(|a| a.rule).collect::<Vec<_>>(),
            ["break_glass"]
        );
        // Refused break-glass requests are not uses.
        assert!(r.on_decision(&f, false, Some("bad_sql")).is_empty());

        let night = facts("ann", 3 * 3600);
        let a = r.on_decision(&night, true, None);
        assert_eq!(
            a.iter().map(|a| a.rule).collect::<Vec<_>>(),
            ["outside_hours"]
        );
        assert!(
            r.on_decision(&facts("ann", 18 * 3600 + 3599), true, None)
                .is_empty()
        );
        assert_eq!(r.on_decision(&facts("ann", 19 * 3600), true, None).len(), 1);

        let f = facts("aud", noon);
        let mut done = Completion {
            rows: 100,
            tenants: vec!["a".into(), "b".into()],
            ..Completion::default()
        };
        assert!(r.on_completion(&f, &done).is_empty());
        done.rows = 101;
        done.tenants.push("c".into());
        let a = r.on_completion(&f, &done);
        assert_eq!(
            a.iter().map(|a| a.rule).collect::<Vec<_>>(),
            ["many_tenants", "large_result"]
        );
    }
}
