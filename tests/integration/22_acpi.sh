# The ACPI tables kagami generates, disassembled by iasl (Debian's
# acpica-tools, the ACPI reference compiler): every table parses, and
# says what the VM's shape says. Byte-level checks: tests/unit/test_acpi.c.

acpi_dump() { # NCPUS NVIRTIO: the tables in ./, disassembled
	"$BUILD/tests/acpidump" . "$1" "$2" || { why "acpidump failed"; return 1; }
	local t
	for t in xsdt facp apic dsdt; do
		iasl -d "$t.dat" >"$t.iasl" 2>&1 || { why "iasl -d $t.dat: $(tail -3 "$t.iasl")"; return 1; }
		grep -qiE '^\s*(Error|Warning)' "$t.dsl" "$t.iasl" && { why "iasl complains about $t: $(grep -iE 'error|warning' "$t.dsl" "$t.iasl" | head -3)"; return 1; }
	done
	return 0
}

test_acpi_iasl() {
	acpi_dump 2 3 || return
	grep -q 'Hardware Reduced (V5) : 1' facp.dsl && grep -q 'Reset Register Supported (V2) : 1' facp.dsl ||
		why "FADT flags: $(grep -E 'Reduced|Reset Reg' facp.dsl)" || return
	grep -A5 'Sleep Control Register' facp.dsl | grep -q 'Address : 0000000000000600' ||
		why "sleep control register: $(grep -A5 'Sleep Control' facp.dsl)" || return
	[[ $(grep -c 'Processor Local APIC' apic.dsl) == 2 ]] || why "MADT: $(grep -c 'Processor Local APIC' apic.dsl) local APICs for 2 vCPUs" || return
	grep -q 'Subtable Type : 01 \[I/O APIC\]' apic.dsl || why "no IOAPIC" || return
	[[ $(grep -c 'Name (_HID, "LNRO0005")' dsdt.dsl) == 3 ]] || why "DSDT: $(grep -c LNRO0005 dsdt.dsl) virtio-mmio devices, expected 3" || return
	grep -q '0xFEB00400,         // Address Base' dsdt.dsl || why "virtio slot 2's window" || return
	grep -A2 'Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive' dsdt.dsl | grep -q '0x00000012' ||
		why "virtio slot 2's interrupt" || return
	grep -q 'EisaId ("PNP0501")' dsdt.dsl && grep -q 'EisaId ("PNP0B00")' dsdt.dsl ||
		why "COM1 or the RTC missing" || return
	grep -q 'Name (\\_S5, Package (0x02)' dsdt.dsl || why "no \\_S5"
}

test_acpi_iasl_shapes() {
	acpi_dump 1 0 || return
	[[ $(grep -c 'Processor Local APIC' apic.dsl) == 1 ]] || why "1 vCPU" || return
	grep -q LNRO0005 dsdt.dsl && { why "virtio devices without any"; return; }
	acpi_dump 64 8 || return
	[[ $(grep -c 'Processor Local APIC' apic.dsl) == 64 ]] || why "64 vCPUs" || return
	[[ $(grep -c 'Name (_HID, "LNRO0005")' dsdt.dsl) == 8 ]] || why "8 virtio devices"
}

t "ACPI: iasl disassembles every table; FADT, MADT and DSDT match the VM" test_acpi_iasl iasl
t "ACPI: 1 and 64 vCPUs, 0 and 8 virtio devices" test_acpi_iasl_shapes iasl
