//go:build !race

package grants

// raceDetector: see race_on_test.go.
const raceDetector = false
