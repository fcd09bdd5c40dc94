# `kagami inspect` on streams written by the stream writer
# (build/tests/mkstream, since nothing else writes snapshots yet): a valid
# sample as a table and as JSON, then corrupted copies, each refused with
# exit status 1 and one line naming the section and byte offset.

MKSTREAM=$BUILD/tests/mkstream

# sample FILE [mkstream options]: writes a sample stream.
sample() {
	[[ -x $MKSTREAM ]] || { why "$MKSTREAM missing (make $MKSTREAM)"; return 1; }
	"$MKSTREAM" "${@:2}" "$1" || { why "mkstream failed"; return 1; }
}

# offset_of FILE KIND INSTANCE: a section's offset, from inspect's table.
offset_of() {
	"$KAGAMI" inspect "$1" | awk -v k="$2" -v i="$3" \
		'$3 == k && $4 == i { print $2; exit }'
}

# flip FILE OFFSET: inverts some bits of one byte in place.
flip() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $((b ^ 0x5a)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# refused FILE TEXT: inspect exits 1 with TEXT as its one stderr line.
refused() {
	kg inspect "$1"
	expect_status 1 || return
	err_has "$2" || return
	err_one_line
}

json_ok() { # FILE: stdout parses as JSON
	if command -v python3 >/dev/null; then
		python3 -m json.tool "$1" >/dev/null || why "stdout is not JSON: $(head -c 300 "$1")"
	else
		grep -q '^{' "$1" && grep -q '^}' "$1" || why "stdout is not a JSON document"
	fi
}

test_inspect_valid() {
	sample s.kst || return
	kg inspect s.kst
	expect_status 0 || return
	out_has "kagami stream format 1.4, x86_64, 4096-byte pages" || return
	local k
	for k in vm-config vcpu irqchip pit clock device pad ram disk \
		epoch-begin ram-pages epoch-end end "unknown 0x8123 (anc)"; do
		out_has " $k " || return
	done
	out_has "total: 18 sections, $(stat -c %s s.kst) bytes" || return
	# device sections are named after the registry's kinds
	awk '$3 == "device" && $4 == 0 && $8 == "uart" { a = 1 }
	     $3 == "device" && $4 == 1 && $8 == "platform" { b = 1 }
	     END { exit !(a && b) }' "$TT/out" ||
		why "devices not named: $(grep device "$TT/out")" || return
	grep -q FAIL "$TT/out" && why "a section failed: $(cat "$TT/out")"
	[[ ! -s $TT/err ]] || why "stderr not empty: $(head -c 300 "$TT/err")"
}

test_inspect_json() {
	sample s.kst || return
	kg inspect --json s.kst
	expect_status 0 || return
	json_ok "$TT/out" || return
	if command -v python3 >/dev/null; then
		python3 - "$TT/out" <<-'EOF' || why "JSON content: $(head -c 300 "$TT/out")"
			import json, sys
			d = json.load(open(sys.argv[1]))
			assert d["valid"] is True and d["error"] is None
			assert d["header"]["version"] == "1.4" and d["header"]["arch"] == "x86_64"
			s = d["sections"]
			assert len(s) == 18 == d["total"]["sections"]
			assert all(x["crc_ok"] for x in s)
			assert s[-1]["kind"] == "end"
			assert [x["index"] for x in s] == list(range(18))
			assert any(x["kind"] == "unknown" and x["kind_id"] == 0x8123 for x in s)
			assert [(x["instance"], x.get("device")) for x in s if x["kind"] == "device"] == [(0, "uart"), (1, "platform")]
			assert all("device" not in x for x in s if x["kind"] != "device")
		EOF
	else
		out_has '"valid":	true' && out_has '"kind":	"ram-pages"'
	fi
	# Options after the file work too.
	kg inspect s.kst --json
	expect_status 0 && json_ok "$TT/out"
}

test_inspect_pipe() {
	[[ -x $MKSTREAM ]] || { why "$MKSTREAM missing"; return; }
	"$MKSTREAM" - | "$KAGAMI" inspect - >out 2>err
	STATUS=$?
	expect_status 0 && grep -q "total: 18 sections" out || why "pipe: $(cat out err)"
}

test_corrupt_payload() {
	sample s.kst || return
	local off
	off=$(offset_of s.kst vcpu 1)
	[[ -n $off ]] || { why "no vcpu #1 in the sample"; return; }
	flip s.kst $((off + 16 + 100))
	refused s.kst "s.kst: section 2 (vcpu #1) at offset $off: checksum mismatch" || return
	# The sections before it are listed, the bad one marked.
	out_has "vm-config" || return
	grep -Eq "^ +2 +$off +vcpu .* FAIL$" "$TT/out" || why "vcpu #1 not marked: $(cat "$TT/out")"
	grep -q "epoch-begin" "$TT/out" && why "listed sections after the error"
	return 0
}

test_corrupt_crc_field() {
	sample s.kst || return
	local off
	off=$(offset_of s.kst pit 0)
	flip s.kst $((off + 16 + 112 + 2)) # the pit's own CRC, 112-byte payload
	refused s.kst "section 5 (pit #0) at offset $off: checksum mismatch"
}

test_corrupt_section_header() {
	sample s.kst || return
	local off
	off=$(offset_of s.kst device 1)
	flip s.kst $((off + 13)) # the length's high bytes
	refused s.kst "section 8 (device #1) at offset $off: declares" || return
	err_has "more than the limit of 1048576"
	sample s.kst || return
	flip s.kst $((off + 2)) # the instance
	refused s.kst "section 8 (device #91) at offset $off: checksum mismatch"
}

test_bad_magic() {
	sample s.kst || return
	flip s.kst 0
	refused s.kst "bad magic at offset 0" || return
	echo "not a snapshot" >t.txt
	refused t.txt "bad magic at offset 0"
}

test_truncated() {
	sample s.kst || return
	local off
	off=$(offset_of s.kst ram 0)
	truncate -s $((off + 16 + 100)) s.kst
	refused s.kst "truncated: section 10 (ram #0) at offset $off declares 65536 bytes, 100 present" || return
	out_has "total: 11 sections, $((off + 16 + 100)) bytes read before the error" || return
	# Cut between two sections: the end marker is missing.
	sample s.kst || return
	truncate -s "$off" s.kst
	refused s.kst "missing end marker: stream ends at offset $off after 10 sections" || return
	truncate -s 20 s.kst
	refused s.kst "truncated: file header at offset 0 is 32 bytes, 20 present" || return
	: >empty.kst
	refused empty.kst "truncated: file header at offset 0 is 32 bytes, 0 present"
}

test_no_end_marker() {
	sample s.kst --no-end || return
	refused s.kst "missing end marker"
}

test_trailing_garbage() {
	sample s.kst || return
	local size
	size=$(stat -c %s s.kst)
	echo junk >>s.kst
	refused s.kst "trailing data after the end marker at offset $size"
}

test_versions() {
	sample v2.kst --version 2.0 || return
	refused v2.kst "format version 2.0 is newer than this kagami reads (1.x)" || return
	sample v15.kst --version 1.5 || return
	kg inspect v15.kst
	expect_status 0 && out_has "kagami stream format 1.5"
}

test_foreign_arch() {
	# inspect lists another architecture's stream; a restore refuses it.
	sample a.kst --arch 183 || return
	kg inspect --json a.kst
	expect_status 0 && out_has '"arch":	"aarch64"' && out_has '"arch_is_host":	false' || return
	kg inspect a.kst
	expect_status 0 && out_has "aarch64 (not this host)"
}

test_invalid_json() {
	sample s.kst || return
	local off
	off=$(offset_of s.kst irqchip 2)
	truncate -s $((off + 100)) s.kst
	kg inspect --json s.kst
	expect_status 1 || return
	json_ok "$TT/out" || return
	out_has '"valid":	false' || return
	out_has "\"error\":	\"truncated: section 4 (irqchip #2) at offset $off" && err_one_line
}

test_inspect_usage() {
	kg inspect
	expect_status 2 && err_has "no file given" && err_one_line || return
	kg inspect a b
	expect_status 2 && err_has "more than one file" || return
	kg inspect --frob x
	expect_status 2 && err_has "unknown option '--frob'" || return
	kg inspect nothere.kst
	expect_status 2 && err_has "nothere.kst: No such file or directory" && err_one_line || return
	mkdir d
	kg inspect d
	expect_status 2 && err_has "is a directory" || return
	kg inspect --help
	expect_status 0 && out_has "usage: kagami inspect" && out_has "--json" || return
	kg --help
	expect_status 0 && out_has "inspect"
}

t "inspect: valid sample stream" test_inspect_valid
t "inspect --json" test_inspect_json
t "inspect from a pipe" test_inspect_pipe
t "inspect: corrupted payload byte" test_corrupt_payload
t "inspect: corrupted checksum" test_corrupt_crc_field
t "inspect: corrupted section header" test_corrupt_section_header
t "inspect: bad magic" test_bad_magic
t "inspect: truncated streams" test_truncated
t "inspect: no end marker" test_no_end_marker
t "inspect: data after the end marker" test_trailing_garbage
t "inspect: newer major refused, newer minor read" test_versions
t "inspect: foreign architecture listed" test_foreign_arch
t "inspect --json on an invalid stream" test_invalid_json
t "inspect: usage errors" test_inspect_usage
