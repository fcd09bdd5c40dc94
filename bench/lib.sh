# Helpers shared by the bench scripts (sourced).

# median VALUES...: the middle value (mean of the two middle ones if even).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# spread VALUES...: (max - min) / median, in percent.
spread() {
	local m
	m=$(median "$@")
	printf '%s\n' "$@" | sort -g | awk -v m="$m" '{ v[NR] = $1 }
		END { printf "%.0f\n", (m > 0 ? 100 * (v[NR] - v[1]) / m : 0) }'
}
# calc FORMAT EXPR: awk arithmetic, printed with FORMAT.
calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }
