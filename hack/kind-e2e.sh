#!/usr/bin/env bash
# wait_until evaluates its conditions later: the single quotes are meant.
# shellcheck disable=SC2016
# NEVER RUN ON THE DEVELOPMENT MACHINES: they have no Docker engine, so this script has been
# reviewed by eye (and hack/kind-e2e.ts by the type checker) only. What runs there instead: the
# `e2e` project (test/e2e/pulls.test.ts: the same cases against a CRI-O of its own) and the `node`
# project (test/node: a real kubelet + CRI-O node running the shipped manifests, see
# docs/local-node.md). Needs Docker, kind >= 0.22, kubectl, GNU coreutils, the Internet, and
# `npm ci` done (Node 24 runs hack/kind-e2e.ts).
#
# The pull cases on a real cluster: a kind node running CRI-O (kindest/node + CRI-O from the CRI-O
# project's packages, as cri-o/cri-o tutorials/crio-in-kind.md does it), a local registry on the
# kind network, the operator image built from ./Dockerfile, config/default installed, the CRI-O
# drop-in installed afterwards (docs/install.md order). The cases themselves are DATA,
# test/e2e/cases.ts, shared with the local suite; hack/kind-e2e.ts runs them (kubectl apply, wait
# until the node applied, `docker exec <node> crictl pull`, CRI-O's reason). Not covered here (the
# local e2e suite covers them): a second, non-enforcing agent, pulls during continuous rewrites,
# the re-check at container creation.
#
#   hack/kind-e2e.sh            # KEEP=1 keeps the cluster and the registry afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-imagepolicy-e2e}
# Pin a digest from the release notes of the kind you use (kindest/node:vX.Y.Z@sha256:...).
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.0}
CRIO_MINOR=${CRIO_MINOR:-v1.36}
SKOPEO_IMAGE=${SKOPEO_IMAGE:-quay.io/skopeo/stable:v1.18.0}
COSIGN_IMAGE=${COSIGN_IMAGE:-gcr.io/projectsigstore/cosign:v2.5.0}
REG="kind-registry:5000" # the registry as the node (and every signature) names it
NODE=$CLUSTER-control-plane
NS=imagepolicy-system
work=$(mktemp -d)
trap 'rm -rf "$work" 2>/dev/null || true' EXIT

say() { printf '\n== %s\n' "$*"; }
die() {
  echo "FAIL: $*" >&2
  exit 1
}
k() { kubectl --context "kind-$CLUSTER" "$@"; }
node() { docker exec -i "$NODE" "$@"; }
wait_until() { # description, shell condition; 180 s
  for _ in $(seq 1 360); do
    eval "$2" && return 0
    sleep 0.5
  done
  die "timed out waiting for $1"
}

say "node image: $KIND_NODE_IMAGE with CRI-O $CRIO_MINOR"
docker build -t "imagepolicy-kind-crio:$CRIO_MINOR" --build-arg BASE="$KIND_NODE_IMAGE" \
  --build-arg CRIO_MINOR="$CRIO_MINOR" - <<'EOF'
ARG BASE
FROM ${BASE}
ARG CRIO_MINOR
RUN set -eux; apt-get update -y; DEBIAN_FRONTEND=noninteractive apt-get install -y gnupg; \
    repo="https://pkgs.k8s.io/addons:/cri-o:/stable:/${CRIO_MINOR}/deb"; mkdir -p /etc/apt/keyrings; \
    curl -fsSL "$repo/Release.key" | gpg --dearmor -o /etc/apt/keyrings/cri-o-apt-keyring.gpg; \
    echo "deb [signed-by=/etc/apt/keyrings/cri-o-apt-keyring.gpg] $repo/ /" > /etc/apt/sources.list.d/cri-o.list; \
    apt-get update -y; DEBIAN_FRONTEND=noninteractive apt-get install -y cri-o; \
    sed -i 's/containerd/crio/g' /etc/crictl.yaml; systemctl disable containerd; systemctl enable crio; \
    mkdir -p /etc/containers/registries.conf.d; \
    printf '[[registry]]\nlocation = "kind-registry:5000"\ninsecure = true\n[[registry]]\nlocation = "kind-registry-alias:5000"\ninsecure = true\n' \
      > /etc/containers/registries.conf.d/50-kind-registry.conf
EOF

say "registry and cluster"
docker inspect kind-registry >/dev/null 2>&1 ||
  docker run -d --name kind-registry -p 127.0.0.1:5001:5000 registry:2 >/dev/null
kind create cluster --name "$CLUSTER" --image "imagepolicy-kind-crio:$CRIO_MINOR" \
  --config hack/kind-config.yaml
[ "${KEEP:-}" = 1 ] || trap 'kind delete cluster --name "$CLUSTER"; rm -rf "$work" 2>/dev/null || true' EXIT
# A second name for the same registry: the cases pull `localhost/...` fixtures under another host
# name, which no exception covers.
docker network connect --alias kind-registry-alias kind kind-registry 2>/dev/null || true # already connected on a re-run
k get node "$NODE" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}' | grep -q '^cri-o://' ||
  die "the node does not run CRI-O"

say "images: the operator, and one tiny image per case (signed with skopeo and cosign)"
docker build -t localhost:5001/imagepolicy-operator:e2e .
docker push -q localhost:5001/imagepolicy-operator:e2e
# The fixture names of test/evaluator/environment.ts that test/e2e/cases.ts pulls.
for image in signed/app:v1 unsigned/app:v1 wrong/app:v1 mirror/app:v1 cosign/app:v1 base/pause:3.10; do
  printf 'FROM busybox:1.36\nRUN echo %s > /image-name\n' "$image" | docker build -q -t "localhost:5001/$image" -
  docker push -q "localhost:5001/$image"
done
mkdir -p "$work/k/registries.d"
echo e2e >"$work/k/pass"
printf 'default-docker:\n  use-sigstore-attachments: true\n' >"$work/k/registries.d/sigstore.yaml"
skopeo() { docker run --rm --network kind -v "$work/k:/k" "$SKOPEO_IMAGE" --registries.d /k/registries.d "$@"; }
cosign() { docker run --rm --network kind -v "$work/k:/k" -w /k -e COSIGN_PASSWORD=e2e "$COSIGN_IMAGE" "$@"; }
for key in a b c; do skopeo generate-sigstore-key --output-prefix "/k/$key" --passphrase-file /k/pass; done
sign() { # key, repository:tag, [identity the signature names]
  skopeo --insecure-policy copy --src-tls-verify=false --dest-tls-verify=false \
    --sign-by-sigstore-private-key "/k/$1.private" --sign-passphrase-file /k/pass \
    ${3:+--sign-identity "$3"} "docker://$REG/$2" "docker://$REG/$2"
}
sign a signed/app:v1
sign c wrong/app:v1
sign a mirror/app:v1 registry.example.com/team/app:v1
cosign generate-key-pair
digest=$(docker inspect --format '{{index .RepoDigests 0}}' localhost:5001/cosign/app:v1)
cosign sign --key /k/cosign.key --allow-insecure-registry --allow-http-registry --tlog-upload=false -y \
  "$REG/cosign/app@${digest##*@}"

say "install config/default with the operator image $REG/imagepolicy-operator:e2e"
cp -r config crds "$work/"
sed -i "s|    newTag: v0.1.0|    newName: $REG/imagepolicy-operator\n    newTag: e2e|" \
  "$work/config/default/kustomization.yaml"
k apply --server-side -k "$work/config/default"
k -n "$NS" rollout status deployment/imagepolicy-controller --timeout=300s
k -n "$NS" rollout status daemonset/imagepolicy-agent --timeout=300s
k create namespace team-a
k create namespace team-b

# What the node reports (file=revision lines) and what it should report from the layer ConfigMaps.
got_revs() {
  k get imagepolicynodestatus "$NODE" \
    -o go-template='{{range $f, $r := .status.appliedRevisions}}{{$f}}={{$r}}{{"\n"}}{{end}}' | sort
}
want_revs() {
  local t='{{range .items}}{{with index .metadata.labels "imagepolicy.dev/namespace"}}{{.}}{{else}}-{{end}}'
  t+=' {{index .metadata.annotations "imagepolicy.dev/revision"}}{{"\n"}}{{end}}'
  k -n "$NS" get cm -l app.kubernetes.io/managed-by=imagepolicy-operator -o go-template="$t" |
    awk '$1 == "-" { c = $2 } $1 != "-" { ns[$1] = $2 }
      END { print "cluster.json=" c; for (n in ns) print n ".json=" c "." ns[n] }' | sort
}

say "install step 2 and 3: cluster.json applied, THEN the CRI-O drop-in and a restart"
wait_until "cluster.json applied" '[ "$(want_revs)" = "$(got_revs)" ] && node test -s /etc/crio/imagepolicy/cluster.json'
docker cp config/crio/10-imagepolicy.conf "$NODE:/etc/crio/crio.conf.d/10-imagepolicy.conf"
node systemctl restart crio
# The DaemonSet probes CRI-O every 60 s.
wait_until "enforcing: true" '[ "$(k get imagepolicynodestatus "$NODE" -o jsonpath={.status.enforcing})" = true ]'
crio_pid=$(node systemctl show -p MainPID --value crio)

say "the cases of test/e2e/cases.ts (hack/kind-e2e.ts)"
node_modules/.bin/node hack/kind-e2e.ts --context "kind-$CLUSTER" --node "$NODE" \
  --registry "$REG" --registry-alias kind-registry-alias:5000 --keys "$work/k" \
  --system-scope "$REG/base/pause" --system-scope "$REG/imagepolicy-operator" \
  --system-scope registry.k8s.io --system-scope docker.io/kindest

say "enforcement and rollout"
k get imagepolicynodestatus "$NODE" -o jsonpath='{.status.enforcingReason}{"\n"}'
wait_until "rollout 1/1" '[ "$(k get clusterimagepolicy signed-by-a -o jsonpath={.status.rollout.display})" = 1/1 ]'
! node journalctl -u crio --no-pager | grep -Ei 'invalid policy|unexpected end of JSON' || die "CRI-O failed to parse a policy"
[ "$(node systemctl show -p MainPID --value crio)" = "$crio_pid" ] || die "CRI-O restarted during the cases"
say "all cases passed"
