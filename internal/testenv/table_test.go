package testenv

import (
	"slices"
	"testing"
)

func TestSplitTable(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want [][]string
	}{
		{
			name: "empty cells stay in place",
			out: "NAME         VERSION   SUBNET         ALLOCATED-IP-COUNT   TOTAL-IP-COUNT   DEFAULT\n" +
				"pool-a       4         10.0.0.0/24    2                    21               true\n" +
				"pool-b       4         10.1.0.0/24                         10\n",
			want: [][]string{
				{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT"},
				{"pool-a", "4", "10.0.0.0/24", "2", "21", "true"},
				{"pool-b", "4", "10.1.0.0/24", "", "10", ""},
			},
		},
		{
			name: "header only",
			out:  "NAME   AGE\n",
			want: [][]string{{"NAME", "AGE"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitTable(tt.out)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("SplitTable() = %q; want %q", got, tt.want)
			}
		})
	}
}
