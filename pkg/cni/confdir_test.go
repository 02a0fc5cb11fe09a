package cni

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDefaultsInConfDir(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  NodeDefaults // File relative to the dir
	}{
		{name: "empty dir"},
		{
			name:  "conflist",
			files: map[string]string{"10-net.conflist": `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipam":{"type":"orbweaver","default_ipv4_ippool":["v4"],"default_ipv6_ippool":["v6"]}},{"type":"portmap"}]}`},
			want:  NodeDefaults{File: "10-net.conflist", IPv4: []string{"v4"}, IPv6: []string{"v6"}},
		},
		{
			name: "the runtime's order: by file name; another ipam is skipped",
			files: map[string]string{
				"05-other.conf":   `{"cniVersion":"1.0.0","name":"o","type":"bridge","ipam":{"type":"host-local"}}`,
				"20-late.conf":    `{"cniVersion":"1.0.0","name":"l","type":"macvlan","ipam":{"type":"orbweaver","default_ipv4_ippool":["late"]}}`,
				"10-spider.conf":  `{"cniVersion":"1.0.0","name":"s","type":"macvlan","ipam":{"type":"spiderpool","default_ipv4_ippool":[" early ",""]}}`,
				"00-notes.txt":    `{"ipam":{"type":"orbweaver","default_ipv4_ippool":["not a config file"]}}`,
				"01-broken.conf":  `{not json`,
				"02-nothing.json": `{"cniVersion":"1.0.0","name":"x","type":"loopback"}`,
			},
			want: NodeDefaults{File: "10-spider.conf", IPv4: []string{"early"}},
		},
		{
			name:  "multus delegates",
			files: map[string]string{"00-multus.conf": `{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","delegates":[{"cniVersion":"0.3.1","name":"default","plugins":[{"type":"macvlan","ipam":{"type":"orbweaver","default_ipv6_ippool":["v6"]}}]}]}`},
			want:  NodeDefaults{File: "00-multus.conf", IPv6: []string{"v6"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := DefaultsInConfDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want.File != "" {
				want.File = filepath.Join(dir, want.File)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DefaultsInConfDir = %+v, want %+v", got, want)
			}
		})
	}
	if _, err := DefaultsInConfDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing dir is not an error")
	}
}
