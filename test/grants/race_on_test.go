//go:build race

package grants

// raceDetector: the race detector slows everything several times; the proofs scale
// their work down under it.
const raceDetector = true
