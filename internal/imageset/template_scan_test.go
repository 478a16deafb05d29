package imageset

import (
	"regexp"
	"testing"
)

// TestHasContainerParam checks the line scan against the regular
// expression it replaces (a train-on params entry "- Container*Image").
func TestHasContainerParam(t *testing.T) {
	re := regexp.MustCompile(`(?m)^[ \t]*-[ \t]*Container\w*Image[ \t]*$`)
	for _, src := range []string{
		"  params:\n    - ContainerNovaApiImage\n",
		"  params:\n    - DockerNovaApiImage\n",
		"- ContainerImage",
		"-ContainerHeat_AllImage  ",
		"    - ContainerNovaApiImage # comment",
		"    - ContainerNova-ApiImage",
		"    ContainerNovaApiImage",
		"    - ContainerNovaApiImages",
		"\t-\tContainerX1Image\r",
		"",
		"-",
	} {
		want := re.MatchString(src)
		if src == "\t-\tContainerX1Image\r" {
			want = true // TrimSpace drops a CR; the file may have CRLF ends
		}
		if got := hasContainerParam([]byte(src)); got != want {
			t.Errorf("hasContainerParam(%q) = %v, want %v", src, got, want)
		}
	}
}
