# Runs every case of cases.json under OPA (`opa test policies/`): the decision must equal the
# expected one exactly. cairn's tests run the same cases through regorus and opa-wasm.
package cairn.authz_test

import data.cairn.authz

decided(c) := d if {
	d := authz.decision with input as c.input
}

mismatched contains c.name if {
	some c in data.cairn_cases
	decided(c) != c.expected
}

mismatched contains c.name if {
	some c in data.cairn_cases
	not decided(c)
}

test_every_case_has_the_expected_decision if {
	print("mismatched:", mismatched)
	count(data.cairn_cases) >= 20
	count(mismatched) == 0
}
