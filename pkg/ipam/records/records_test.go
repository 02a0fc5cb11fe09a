package records

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func rec(ip string, pod uint64, attach uint32) Record {
	return Record{IP: netip.MustParseAddr(ip), Owner: Owner{Pod: pod, Attachment: attach}}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		subnet string
		recs   []Record
	}{
		{"empty", "10.0.0.0/24", nil},
		{"one at offset zero", "10.0.0.0/24", []Record{rec("10.0.0.0", 1, 2)}},
		{"last address of subnet", "10.0.0.0/24", []Record{rec("10.0.0.255", 1, 2)}},
		{"unsorted input", "10.244.0.0/16", []Record{rec("10.244.9.1", 3, 3), rec("10.244.0.7", 1, 1), rec("10.244.1.0", 2, 2)}},
		{"ipv4 /0 edges", "0.0.0.0/0", []Record{rec("0.0.0.0", 1, 1), rec("255.255.255.255", 2, 2)}},
		{"ipv6 /64", "fd00:1::/64", []Record{rec("fd00:1::", 1, 1), rec("fd00:1::ffff:ffff:ffff:ffff", 2, 2)}},
		{"ipv6 /48 needs wide offsets", "fd00:1::/48", []Record{rec("fd00:1::5", 1, 1), rec("fd00:1:0:ffff::1", 2, 2), rec("fd00:1:0:ffff:ffff:ffff:ffff:ffff", 3, 3)}},
		{"ipv6 ::/0 edges", "::/0", []Record{rec("::", 1, 1), rec("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 2, 2)}},
		{"max owner values", "192.168.0.0/30", []Record{rec("192.168.0.1", ^uint64(0), ^uint32(0))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subnet := netip.MustParsePrefix(tt.subnet)
			data, err := Encode(subnet, tt.recs)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(subnet, data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := slices.Clone(tt.recs)
			slices.SortFunc(want, func(a, b Record) int { return a.IP.Compare(b.IP) })
			if !slices.Equal(got, want) {
				t.Fatalf("round trip:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		subnet string
		recs   []Record
		want   string
	}{
		{"outside subnet", "10.0.0.0/24", []Record{rec("10.0.1.0", 1, 1)}, "IP 10.0.1.0 is outside subnet 10.0.0.0/24"},
		{"other family", "10.0.0.0/24", []Record{rec("fd00::1", 1, 1)}, "outside subnet"},
		{"held twice", "10.0.0.0/24", []Record{rec("10.0.0.9", 1, 1), rec("10.0.0.9", 2, 2)}, "IP 10.0.0.9 is recorded twice"},
		{"invalid subnet", "", nil, "invalid subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var subnet netip.Prefix
			if tt.subnet != "" {
				subnet = netip.MustParsePrefix(tt.subnet)
			}
			_, err := Encode(subnet, tt.recs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRejectsCorruptData(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	good, err := Encode(subnet, []Record{rec("10.0.0.1", 1, 1), rec("10.0.0.2", 2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"header only one byte", []byte{1}},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"unknown flag", append([]byte{1, 0x80}, good[2:]...)},
		{"wide flag on a small subnet", append([]byte{1, 1}, good[2:]...)},
		{"count larger than data", []byte{1, 0, 200}},
		{"truncated record", good[:len(good)-1]},
		{"trailing byte", append(slices.Clone(good), 0)},
		{"offset past the subnet", []byte{1, 0, 1, 0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"bad varint", []byte{1, 0, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(subnet, tt.data); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOwnerKeys(t *testing.T) {
	a := OwnerOf("6f1c3c1e-0000-4000-8000-000000000001", "ctr-a", "eth0")
	if a != OwnerOf("6f1c3c1e-0000-4000-8000-000000000001", "ctr-a", "eth0") {
		t.Fatal("OwnerOf is not deterministic")
	}
	distinct := []Owner{
		a,
		OwnerOf("6f1c3c1e-0000-4000-8000-000000000002", "ctr-a", "eth0"), // other pod
		OwnerOf("6f1c3c1e-0000-4000-8000-000000000001", "ctr-b", "eth0"), // new sandbox
		OwnerOf("6f1c3c1e-0000-4000-8000-000000000001", "ctr-a", "net1"), // other NIC
		OwnerOf("6f1c3c1e-0000-4000-8000-000000000001", "ctr-ae", "th0"), // no ambiguity from concatenation
	}
	for i := range distinct {
		for j := i + 1; j < len(distinct); j++ {
			if distinct[i] == distinct[j] {
				t.Errorf("owners %d and %d collide: %v", i, j, distinct[i])
			}
		}
	}
	if distinct[2].Pod != a.Pod || distinct[3].Pod != a.Pod {
		t.Error("attachments of one pod must share the pod key, which GC compares")
	}
}

func TestReserveOwner(t *testing.T) {
	a, b := ReserveOwner("node-a"), ReserveOwner("node-b")
	if a == b || a != ReserveOwner("node-a") {
		t.Fatalf("reserve owners must be per node and deterministic: %v %v", a, b)
	}
	if !a.IsReserve() || !b.IsReserve() {
		t.Fatal("a reserve owner does not say it is one")
	}
	// A pod named like a node is still a pod.
	if o := OwnerOf("node-a", "", ""); o.IsReserve() || o.Pod == a.Pod && o.Attachment == a.Attachment {
		t.Fatalf("pod owner %v taken for a reservation", o)
	}
	for i := range 100000 {
		if o := OwnerOf("uid", fmt.Sprintf("ctr-%d", i), "eth0"); o.IsReserve() {
			t.Fatalf("attachment %d digests to the reserve marker", i)
		}
	}
}

// TestFullSlash16 fills every address of a /16 and checks the size the design promises:
// 13 bytes a record before base64.
func TestFullSlash16(t *testing.T) {
	subnet := netip.MustParsePrefix("10.96.0.0/16")
	recs := Fill(subnet, 65536)
	data, err := Encode(subnet, recs)
	if err != nil {
		t.Fatal(err)
	}
	if per := float64(len(data)) / 65536; per > 13.001 {
		t.Fatalf("%d bytes for 65,536 records = %.3f bytes a record, want 13", len(data), per)
	}
	got, err := Decode(subnet, data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, recs) {
		t.Fatal("65,536 records did not round-trip")
	}
}

func TestRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []string{"10.0.0.0/8", "172.16.0.0/28", "fd00::/64", "fd00::/40", "::/0"} {
		subnet := netip.MustParsePrefix(s)
		t.Run(s, func(t *testing.T) {
			for round := 0; round < 50; round++ {
				n := rng.IntN(200)
				seen := map[netip.Addr]bool{}
				var recs []Record
				for len(recs) < n {
					ip := randomAddr(rng, subnet)
					if seen[ip] {
						if len(seen) == sizeCap(subnet) {
							break
						}
						continue
					}
					seen[ip] = true
					recs = append(recs, Record{IP: ip, Owner: Owner{rng.Uint64(), rng.Uint32()}})
				}
				data, err := Encode(subnet, recs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Decode(subnet, data)
				if err != nil {
					t.Fatal(err)
				}
				slices.SortFunc(recs, func(a, b Record) int { return a.IP.Compare(b.IP) })
				if !slices.Equal(got, recs) {
					t.Fatalf("round %d: records did not round-trip", round)
				}
			}
		})
	}
}

func sizeCap(p netip.Prefix) int {
	if h := p.Addr().BitLen() - p.Bits(); h < 20 {
		return 1 << h
	}
	return 1 << 20
}

func randomAddr(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		r := byte(rng.UintN(256))
		bitsFixed := p.Bits() - i*8
		switch {
		case bitsFixed >= 8:
		case bitsFixed <= 0:
			b[i] = r
		default:
			mask := byte(0xff) >> bitsFixed
			b[i] = b[i]&^mask | r&mask
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"10.0.0.0/24", "fd00::/48"} {
		subnet := netip.MustParsePrefix(s)
		recs := Fill(subnet, 3)
		data, err := Encode(subnet, recs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s, data)
	}
	f.Add("10.0.0.0/24", []byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, subnetText string, data []byte) {
		subnet, err := netip.ParsePrefix(subnetText)
		if err != nil {
			return
		}
		recs, err := Decode(subnet, data)
		if err != nil {
			if len(data) > 0 && !errors.Is(err, ErrCorrupt) && subnet.IsValid() {
				t.Fatalf("decode error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for i, r := range recs {
			if !subnet.Masked().Contains(r.IP) {
				t.Fatalf("decoded %s outside %s", r.IP, subnet)
			}
			if i > 0 && recs[i-1].IP.Compare(r.IP) >= 0 {
				t.Fatalf("decoded records not strictly ascending: %s then %s", recs[i-1].IP, r.IP)
			}
		}
		again, err := Encode(subnet, recs)
		if err != nil {
			t.Fatalf("re-encode of decoded records: %v", err)
		}
		back, err := Decode(subnet, again)
		if err != nil || !slices.Equal(back, recs) {
			t.Fatalf("decode(encode(decode(x))) != decode(x): %v", err)
		}
	})
}

func ExampleEncode() {
	subnet := netip.MustParsePrefix("10.244.120.0/24")
	data, _ := Encode(subnet, []Record{
		{IP: netip.MustParseAddr("10.244.120.10"), Owner: OwnerOf("pod-uid-1", "ctr-1", "eth0")},
		{IP: netip.MustParseAddr("10.244.120.11"), Owner: OwnerOf("pod-uid-2", "ctr-2", "eth0")},
	})
	recs, _ := Decode(subnet, data)
	fmt.Println(len(data), "bytes:", recs[0].IP, recs[1].IP)
	// Output: 29 bytes: 10.244.120.10 10.244.120.11
}
