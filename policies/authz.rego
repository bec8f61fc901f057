# cairn's query policy: one decision per query. The contract (input, output, how cairn
# compiles the output into the plan) is docs/POLICY.md; the cases every engine must agree on
# are policies/cases.json (run by authz_test.rego with `opa test policies/`, and by cairn's
# tests with regorus and with the opa-wasm bundle).
#
# Least privilege: a subject is granted what its strongest role grants and nothing else;
# a table no role grants is denied; the access log is read by auditors only.
#
# The policy returns structured data only: row filters as (column, op, values) and masks as
# null/replace/hash per column. cairn never executes text from here as SQL.
#
# Portability: this file uses only constructs and builtins that OPA, regorus and OPA's wasm
# compiler all implement (the three-way agreement test is what proves it).
package cairn.authz

# The role that grants this request, by precedence. break-glass applies only with a
# justification; without one a subject falls back to its other roles.
role := "auditor" if {
	"auditor" in input.subject.roles
} else := "break-glass" if {
	"break-glass" in input.subject.roles
	justified
} else := "security" if {
	"security" in input.subject.roles
} else := "tenant-admin" if {
	"tenant-admin" in input.subject.roles
} else := "analyst" if {
	"analyst" in input.subject.roles
}

justified if {
	is_string(input.request.justification)
	input.request.justification != ""
}

# Which tables each role may read, scoped to the caller's tenant or not, and masked how.
# "when" makes a mask conditional on the row (same shape as a row filter).
sensitive_rows := {"column": "sensitivity", "op": "in", "values": ["confidential", "pii"]}

grants := {
	"auditor": {
		"events": {"tenant_scoped": false, "masks": {}},
		"access_log": {"tenant_scoped": false, "masks": {}},
	},
	"break-glass": {"events": {"tenant_scoped": false, "masks": {}}},
	"security": {"events": {"tenant_scoped": true, "masks": {}}},
	"tenant-admin": {"events": {
		"tenant_scoped": true,
		"masks": {"actor.ip": {"kind": "hash", "when": sensitive_rows}},
	}},
	"analyst": {"events": {
		"tenant_scoped": true,
		"masks": {
			"actor.ip": {"kind": "null", "when": sensitive_rows},
			"details": {"kind": "null", "when": sensitive_rows},
		},
	}},
}

# An analyst reads the last 90 days only (a row filter, so older rows are simply absent).
analyst_window_us := ((90 * 24) * 3600) * 1000000

role_limits := {
	"auditor": {"max_rows": 100000},
	"break-glass": {"max_rows": 100000},
	"security": {"max_rows": 100000},
	"tenant-admin": {"max_rows": 50000},
	"analyst": {"max_rows": 10000},
}

tenant := t if {
	t := input.subject.tenant
	is_string(t)
	t != ""
}

denials contains "no role of the subject grants access (roles: auditor, break-glass, security, tenant-admin, analyst)" if {
	not role
	not break_glass_unjustified
}

break_glass_unjustified if {
	not role
	"break-glass" in input.subject.roles
}

denials contains "break-glass requires a justification" if break_glass_unjustified

denials contains sprintf("role %s may not read table %s", [role, name]) if {
	role
	some name, _ in input.tables
	not grants[role][name]
}

denials contains sprintf("role %s is scoped to a tenant and the subject has none", [role]) if {
	role
	some name, _ in input.tables
	grants[role][name].tenant_scoped
	not tenant
}

queried := t if {
	t := input.tables
	is_object(t)
}

denials contains "the query reads no table" if not queried

denials contains "the query reads no table" if count(queried) == 0

now_us := n if {
	n := input.request.now_us
	is_number(n)
}

denials contains "input.request.now_us must be a number" if not now_us

default allow := false

allow if {
	role
	count(denials) == 0
}

filters(name) := array.concat(tenant_filter(name), window_filter)

tenant_filter(name) := [{"column": "tenant", "op": "eq", "values": [tenant]}] if {
	grants[role][name].tenant_scoped
}

tenant_filter(name) := [] if {
	not grants[role][name].tenant_scoped
}

default window_filter := []

window_filter := [{"column": "occurred_at", "op": "gte", "values": [now_us - analyst_window_us]}] if {
	role == "analyst"
}

default tables := {}

tables := {name: {"row_filters": filters(name), "masks": grants[role][name].masks} |
	some name, _ in input.tables
} if allow

default flags := []

flags := ["break_glass"] if role == "break-glass"

reasons := [sprintf("role %s grants %s", [role, concat(", ", sort([n | some n, _ in input.tables]))])] if allow

reasons := sort([d | some d in denials]) if not allow

default limits := {}

limits := role_limits[role] if allow

decision := {
	"allow": allow,
	"reasons": reasons,
	"flags": flags,
	"tables": tables,
	"limits": limits,
}
