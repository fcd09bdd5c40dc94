# kagami check: the history checker's command line (no guest needed; its
# logic is in tests/unit/test_check.c, its use on real runs in
# 40_kvstore.sh and the drills).

hist_ok() {
	printf 'history 1\nstart 1000\ninvoke a-1 1000 put k v1\nok a-1 2000\ninvoke a-2 3000 get k\nok a-2 4000 v1\nend 5000\n' >"$1"
}

test_check_pass_and_json() {
	hist_ok h
	kg check h
	expect_status 0 && out_has "PASS: linearizable" && out_has "2 ok" || return
	kg check --json h
	expect_status 0 && out_has '"pass":true' && out_has '"acked_writes":1' || return
	# Two files of one load are judged together.
	printf 'history 1\ninvoke b-1 1500 put k v2\nok b-1 2500\n' >h2
	kg check h h2
	expect_status 0 && out_has "3 ok" || return
}

test_check_failures() {
	printf 'history 1\ninvoke a-1 1000 put k v1\nok a-1 2000\ninvoke a-2 3000 put k v2\nok a-2 4000\ninvoke a-3 5000 get k\nok a-3 6000 v1\n' >lost
	kg check lost
	expect_status 1 && out_has "FAIL: not linearizable" &&
		out_has "get a-3 returned 'v1', but put a-2 ('v2') was acknowledged" || return
	printf 'history 1\nstart 1000\ninvoke a-1 1000 put k v1\ninfo a-1 2000\nend 5000\n' >none
	kg check none
	expect_status 1 && out_has "FAIL: nothing was acknowledged" &&
		out_has "(it lasted to the end)" || return
}

test_check_bad_input() {
	kg check
	expect_status 2 && err_has "no history given" && err_one_line || return
	kg check --frob
	expect_status 2 && err_has "unknown option '--frob'" || return
	kg check missing
	expect_status 2 && err_has "kagami check: history missing: No such file or directory" && err_one_line || return
	printf 'history 1\ninvoke a-1 1000 put k v1\nok a-2 2000\n' >bad
	kg check bad
	expect_status 2 && err_has "history bad line 3: completes an id that was never invoked" && err_one_line || return
	printf 'history 1\ninvoke a-1 1000 put k v1\nok a-1' >cut
	kg check cut
	expect_status 2 && err_has "line 3: the last line has no newline" || return
	kg check --help
	expect_status 0 && out_has "usage: kagami check" || return
}

t "check: a linearizable history passes (text and JSON, several files)" test_check_pass_and_json
t "check: lost writes and nothing acknowledged fail, with reasons" test_check_failures
t "check: usage, missing and malformed histories (exit 2, one line)" test_check_bad_input
