package cost

import (
	"math/big"
	"testing"
)

// Archive cost per million cases from the December 2026 table, for the
// measured object sizes: a five-task case (5.9 KB object, its seven
// receipts one segment item of under 4 KB) and the same with one 32 KiB
// detached output (36 KB object, one payload read back), kept 7 years.
func TestArchiveCost(t *testing.T) {
	tbl, err := Load(DefaultVersion)
	if err != nil {
		t.Fatal(err)
	}
	const sevenYears = 7 * 12
	for _, tc := range []struct {
		name                                      string
		c                                         ArchiveCase
		wu, ru                                    int64
		puts, gets, storage, writes, reads, total string // per million cases
	}{
		{name: "five-task case", c: ArchiveCase{ObjectBytes: 5_900, ItemBytes: []int64{4_000}, IndexBytes: 600, RetentionMonths: sevenYears},
			wu: 5, ru: 4, puts: "5.00", gets: "0.40", storage: "10.62", writes: "3.13", reads: "0.50", total: "19.64"},
		{name: "with a 32 KiB payload", c: ArchiveCase{ObjectBytes: 36_000, Payloads: 1, ItemBytes: []int64{4_000}, IndexBytes: 600, RetentionMonths: sevenYears},
			wu: 5, ru: 4, puts: "5.00", gets: "0.80", storage: "64.78", writes: "3.13", reads: "0.50", total: "74.20"},
		{name: "one item per receipt (chains from before segments)", c: ArchiveCase{ObjectBytes: 5_900,
			ItemBytes: []int64{900, 700, 700, 700, 700, 700, 600}, IndexBytes: 600, RetentionMonths: sevenYears},
			wu: 8, ru: 6, puts: "5.00", gets: "0.40", storage: "10.62", writes: "5.00", reads: "0.75", total: "21.77"},
		{name: "one year", c: ArchiveCase{ObjectBytes: 5_900, ItemBytes: []int64{4_000}, IndexBytes: 600, RetentionMonths: 12},
			wu: 5, ru: 4, puts: "5.00", gets: "0.40", storage: "1.52", writes: "3.13", reads: "0.50", total: "10.54"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tbl.ArchiveCost(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if p.WriteUnits != tc.wu || p.ReadUnits != tc.ru {
				t.Errorf("units: %d writes, %d reads, want %d, %d", p.WriteUnits, p.ReadUnits, tc.wu, tc.ru)
			}
			for _, x := range []struct {
				name string
				got  *big.Rat
				want string
			}{{"puts", p.Puts, tc.puts}, {"gets", p.Gets, tc.gets}, {"storage", p.Storage, tc.storage},
				{"writes", p.Writes, tc.writes}, {"reads", p.Reads, tc.reads}, {"total", p.Total, tc.total}} {
				if got := PerMillion(x.got).FloatString(2); got != x.want {
					t.Errorf("%s: $%s per million, want $%s", x.name, got, x.want)
				}
			}
			t.Logf("%s: %s per million cases (storage %s)", tc.name, Dollars(PerMillion(p.Total), 2), Dollars(PerMillion(p.Storage), 2))
		})
	}
	for _, bad := range []ArchiveCase{
		{ItemBytes: []int64{1}, IndexBytes: 1, RetentionMonths: 1},
		{ObjectBytes: 1, IndexBytes: 1, RetentionMonths: 1},
		{ObjectBytes: 1, ItemBytes: []int64{0}, IndexBytes: 1, RetentionMonths: 1},
		{ObjectBytes: 1, ItemBytes: []int64{1}, IndexBytes: 1},
		{ObjectBytes: 1, ItemBytes: []int64{1}, IndexBytes: 1, RetentionMonths: 1, Payloads: -1},
	} {
		if _, err := tbl.ArchiveCost(bad); err == nil {
			t.Errorf("%+v priced", bad)
		}
	}
}
