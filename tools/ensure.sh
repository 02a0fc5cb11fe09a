#!/usr/bin/env bash
# ensure.sh TOOL... makes bin/TOOL usable, building it only when the cache lacks it.
#
# Every tool is built from source through the Go module proxy (nothing prebuilt is
# downloaded) into a cache outside the clone, $ORBWEAVER_TOOLS_CACHE (default
# ~/.cache/orbweaver), as <tool>-<version>/<tool>; bin/<tool> is a symlink to it.
# A fresh clone on a warm machine therefore costs nothing, and a cold machine builds
# each tool once. etcd comes from Debian's etcd-server package (see tools/README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${ORBWEAVER_TOOLS_CACHE:-$HOME/.cache/orbweaver}
bin=$root/bin
mkdir -p "$bin" "$cache"

k8s_version=v1.33.1
k8s_minor=33
# Stamp the Kubernetes binaries like a release: unstamped ones report
# v0.0.0-master and kubectl refuses to parse that version.
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

# version_of TOOL prints the version pinned for TOOL (read from the tools modules).
version_of() {
	case $1 in
	kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubelet | kubectl) echo "$k8s_version" ;;
	controller-gen) (cd "$here" && go list -m -f '{{.Version}}' sigs.k8s.io/controller-tools) ;;
	swagger) (cd "$here" && go list -m -f '{{.Version}}' github.com/go-swagger/go-swagger) ;;
	helm) (cd "$here" && go list -m -f '{{.Version}}' helm.sh/helm/v3) ;;
	cnitool) (cd "$here" && go list -m -f '{{.Version}}' github.com/containernetworking/cni) ;;
	bridge | macvlan | host-local | loopback) (cd "$here" && go list -m -f '{{.Version}}' github.com/containernetworking/plugins) ;;
	whereabouts) (cd "$here/whereabouts" && go list -m -f '{{.Version}}' github.com/k8snetworkplumbingwg/whereabouts) ;;
	spiderpool | spiderpool-agent) (cd "$here/spiderpool" && go list -m -f '{{.Version}}' github.com/spidernet-io/spiderpool) ;;
	prometheus | promtool) (cd "$here/prometheus" && go list -m -f '{{.Version}}' github.com/prometheus/prometheus) ;;
	etcd) echo debian ;;
	*) echo "ensure.sh: unknown tool $1" >&2; return 1 ;;
	esac
}

# package_of TOOL prints the Go package that builds TOOL.
package_of() {
	case $1 in
	kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubelet | kubectl) echo "k8s.io/kubernetes/cmd/$1" ;;
	controller-gen) echo sigs.k8s.io/controller-tools/cmd/controller-gen ;;
	swagger) echo github.com/go-swagger/go-swagger/cmd/swagger ;;
	helm) echo helm.sh/helm/v3/cmd/helm ;;
	cnitool) echo github.com/containernetworking/cni/cnitool ;;
	bridge | macvlan) echo "github.com/containernetworking/plugins/plugins/main/$1" ;;
	loopback) echo github.com/containernetworking/plugins/plugins/main/loopback ;;
	host-local) echo github.com/containernetworking/plugins/plugins/ipam/host-local ;;
	whereabouts) echo github.com/k8snetworkplumbingwg/whereabouts/cmd ;;
	spiderpool | spiderpool-agent) echo "github.com/spidernet-io/spiderpool/cmd/$1" ;;
	prometheus | promtool) echo "github.com/prometheus/prometheus/cmd/$1" ;;
	esac
}

# module_of TOOL prints the folder of the Go module that pins TOOL.
module_of() {
	case $1 in
	whereabouts) echo "$here/whereabouts" ;;
	spiderpool | spiderpool-agent) echo "$here/spiderpool" ;;
	prometheus | promtool) echo "$here/prometheus" ;;
	*) echo "$here" ;;
	esac
}

# ldflags_of TOOL prints the linker flags for TOOL. helm is stamped as its own Makefile
# does: its version (unstamped, `helm version` says v3.22) and the Kubernetes version of
# its client-go, the default Capabilities.KubeVersion of `helm template` and `helm lint`
# (unstamped, v1.20).
ldflags_of() {
	case $1 in
	helm)
		local v kv
		v=$(version_of helm)
		kv=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/client-go) # v0.37.0 is Kubernetes 1.37
		kv=${kv#v0.}
		kv=${kv%%.*}
		echo "-s -w -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kv \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kv"
		;;
	prometheus | promtool)
		# The module's v0.316.0 is Prometheus 3.16.0; stamped as its Makefile does, so
		# --version says which.
		local v m
		v=$(version_of "$1")
		v=${v#v0.}
		m=${v%%.*}
		echo "-s -w -X github.com/prometheus/common/version.Version=${m:0:1}.${m:1}.${v#*.} -X github.com/prometheus/common/version.Branch=HEAD"
		;;
	*) echo "-s -w" ;;
	esac
}

# tags_of TOOL prints the build tags for TOOL. Prometheus and promtool leave out every
# service discovery but the minimum (static, file; Kubernetes is imported directly):
# the cloud SDKs behind the others more than doubled the build time, and the tests scrape static
# targets.
tags_of() {
	case $1 in
	prometheus | promtool) echo remove_all_sd ;;
	*) echo "" ;;
	esac
}

# ensure_whereabouts_crds copies whereabouts' three CRDs out of its module download into
# the cache (module-cache files are read-only, hence chmod) and links bin/whereabouts-crds,
# the folder test/bench installs into its API server.
ensure_whereabouts_crds() {
	local dir crds src
	dir=$cache/whereabouts-$(version_of whereabouts)
	crds=$dir/crds
	if [ "$(ls "$crds"/*.yaml 2>/dev/null | wc -l)" -ne 3 ]; then
		src=$(cd "$here/whereabouts" && go mod download github.com/k8snetworkplumbingwg/whereabouts &&
			go list -m -f '{{.Dir}}' github.com/k8snetworkplumbingwg/whereabouts)/doc/crds
		rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
		for kind in ippools nodeslicepools overlappingrangeipreservations; do
			cp "$src/whereabouts.cni.cncf.io_$kind.yaml" "$crds.tmp/"
		done
		chmod -R u+w "$crds.tmp"
		rm -rf "$crds" && mv "$crds.tmp" "$crds"
	fi
	ln -sfn "$crds" "$bin/whereabouts-crds"
}

# ensure_spiderpool_crds does the same for SpiderPool's CRDs (charts/spiderpool/crds/ in
# its module): the four kinds orbweaver serves too, of which its agent needs the pool,
# endpoint and reserved-IP ones. test/bench installs them in place of orbweaver's (same
# group and kinds) while the spiderpool peer runs, and puts orbweaver's back after.
ensure_spiderpool_crds() {
	local dir crds src
	dir=$cache/spiderpool-$(version_of spiderpool)
	crds=$dir/crds
	if [ "$(ls "$crds"/*.yaml 2>/dev/null | wc -l)" -ne 4 ]; then
		src=$(cd "$here/spiderpool" && go mod download github.com/spidernet-io/spiderpool &&
			go list -m -f '{{.Dir}}' github.com/spidernet-io/spiderpool)/charts/spiderpool/crds
		rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
		for kind in spiderippools spiderendpoints spidersubnets spiderreservedips; do
			cp "$src/spiderpool.spidernet.io_$kind.yaml" "$crds.tmp/"
		done
		chmod -R u+w "$crds.tmp"
		rm -rf "$crds" && mv "$crds.tmp" "$crds"
	fi
	ln -sfn "$crds" "$bin/spiderpool-crds"
}

ensure_etcd() {
	if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
		echo ">> installing Debian's etcd-server (apt-get)" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq etcd-server >/dev/null
	fi
	ln -sfn "$(command -v etcd || echo /usr/bin/etcd)" "$bin/etcd"
}

k8s_missing=()
go_missing=()
for tool in "$@"; do
	if [ "$tool" = etcd ]; then
		ensure_etcd
		continue
	fi
	dir=$cache/$tool-$(version_of "$tool")
	if [ ! -x "$dir/$tool" ]; then
		case $tool in
		kube-* | kubelet | kubectl) k8s_missing+=("$tool") ;;
		*) go_missing+=("$tool") ;;
		esac
	fi
done

# Kubernetes components share most of their packages: one go build compiles them once.
if [ ${#k8s_missing[@]} -gt 0 ]; then
	out=$(mktemp -d "$cache/.build-XXXXXX")
	trap 'rm -rf "$out"' EXIT
	pkgs=()
	for tool in "${k8s_missing[@]}"; do pkgs+=("$(package_of "$tool")"); done
	echo ">> building ${k8s_missing[*]} $k8s_version from source (a cold build takes 10+ minutes)" >&2
	(cd "$here/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$k8s_ldflags" -o "$out/" "${pkgs[@]}")
	for tool in "${k8s_missing[@]}"; do
		dir=$cache/$tool-$k8s_version
		mkdir -p "$dir" && mv "$out/$tool" "$dir/$tool"
	done
fi

for tool in "${go_missing[@]}"; do
	dir=$cache/$tool-$(version_of "$tool")
	echo ">> building $tool $(version_of "$tool") from source" >&2
	mkdir -p "$dir"
	# Build beside the final name and rename, so an interrupted build never leaves a
	# half-written tool that later runs would trust.
	(cd "$(module_of "$tool")" && CGO_ENABLED=0 go build -trimpath -tags "$(tags_of "$tool")" -ldflags "$(ldflags_of "$tool")" -o "$dir/$tool.tmp" "$(package_of "$tool")")
	mv "$dir/$tool.tmp" "$dir/$tool"
done

for tool in "$@"; do
	[ "$tool" = etcd ] && continue
	ln -sfn "$cache/$tool-$(version_of "$tool")/$tool" "$bin/$tool"
	if [ "$tool" = whereabouts ]; then ensure_whereabouts_crds; fi
	if [ "$tool" = spiderpool ]; then ensure_spiderpool_crds; fi
done
