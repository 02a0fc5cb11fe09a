package testenv

import "strings"

// SplitTable splits kubectl's table output (`kubectl get` without -o) into rows of cells,
// the header first. It cuts each line at the columns where the header's words start, so
// an empty cell stays in its place as "".
func SplitTable(out string) [][]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var starts []int
	for i := 0; i < len(lines[0]); i++ {
		if lines[0][i] != ' ' && (i == 0 || lines[0][i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	var rows [][]string
	for _, line := range lines {
		var cells []string
		for j, start := range starts {
			end := len(line)
			if j+1 < len(starts) && starts[j+1] < end {
				end = starts[j+1]
			}
			cell := ""
			if start < len(line) {
				cell = strings.TrimSpace(line[start:end])
			}
			cells = append(cells, cell)
		}
		rows = append(rows, cells)
	}
	return rows
}
