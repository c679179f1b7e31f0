#!/usr/bin/env bash
# wait_until evaluates its conditions later: the single quotes, and the variables only those
# conditions read, are meant.
# shellcheck disable=SC2016,SC2034
# NEVER RUN ON THE DEVELOPMENT MACHINES: they have no Docker engine (docs/design.md), so this
# script has been reviewed by eye only. What runs there is test/e2e/pulls.test.ts, the same cases
# against local processes. Needs Docker, kind >= 0.22, kubectl, GNU coreutils and the Internet.
#
# The pulls e2e on a real cluster: a kind node running CRI-O (kindest/node + CRI-O from the CRI-O
# project's packages, as cri-o/cri-o tutorials/crio-in-kind.md does it), a local registry on the
# kind network, the operator image built from ./Dockerfile, config/default installed, the CRI-O
# drop-in installed afterwards (docs/install.md order), then each case applied with kubectl and
# pulled with crictl inside the node (docker exec). Not covered here: a second, non-enforcing
# agent (one DaemonSet pod per node) and the CRI-O log check for policy parse errors beyond
# `journalctl -u crio`.
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
now_ms() { date +%s%3N; }

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
    printf '[[registry]]\nlocation = "kind-registry:5000"\ninsecure = true\n' \
      > /etc/containers/registries.conf.d/50-kind-registry.conf
EOF

say "registry and cluster"
docker inspect kind-registry >/dev/null 2>&1 ||
  docker run -d --name kind-registry -p 127.0.0.1:5001:5000 registry:2 >/dev/null
kind create cluster --name "$CLUSTER" --image "imagepolicy-kind-crio:$CRIO_MINOR" \
  --config hack/kind-config.yaml
[ "${KEEP:-}" = 1 ] || trap 'kind delete cluster --name "$CLUSTER"; rm -rf "$work" 2>/dev/null || true' EXIT
docker network connect kind kind-registry 2>/dev/null || true # already connected on a re-run
k get node "$NODE" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}' | grep -q '^cri-o://' ||
  die "the node does not run CRI-O"

say "images: the operator, and one tiny image per case (signed with skopeo and cosign)"
docker build -t localhost:5001/imagepolicy-operator:e2e .
docker push -q localhost:5001/imagepolicy-operator:e2e
for repo in signed/app unsigned/app wrong/app mirror/app cosign/app base/pause; do
  printf 'FROM busybox:1.36\nRUN echo %s > /image-name\n' "$repo" | docker build -q -t "localhost:5001/$repo:v1" -
  docker push -q "localhost:5001/$repo:v1"
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
layers() { want_revs | tr '\n' ' '; }
converge() { # $before: the layers before the change
  wait_until "the controller to publish" '[ "$(layers)" != "$before" ]'
  wait_until "the agent to apply" '[ "$(want_revs)" = "$(got_revs)" ]'
}
apply_wait() { # YAML on stdin
  before=$(layers)
  k apply --server-side --field-manager=e2e -f -
  converge
}
delete_wait() { # kubectl delete arguments
  before=$(layers)
  k delete "$@"
  converge
}

say "install step 2 and 3: cluster.json applied, THEN the CRI-O drop-in and a restart"
wait_until "cluster.json applied" '[ "$(want_revs)" = "$(got_revs)" ] && node test -s /etc/crio/imagepolicy/cluster.json'
docker cp config/crio/10-imagepolicy.conf "$NODE:/etc/crio/crio.conf.d/10-imagepolicy.conf"
node systemctl restart crio
# The DaemonSet probes CRI-O every 60 s.
wait_until "enforcing: true" '[ "$(k get imagepolicynodestatus "$NODE" -o jsonpath={.status.enforcing})" = true ]'
crio_pid=$(node systemctl show -p MainPID --value crio)

# policy KIND NAME NAMESPACE ROOT_OF_TRUST IDENTITY SCOPE... (JSON, which kubectl reads as YAML)
policy() {
  local kind=$1 name=$2 ns=$3 root=$4 id=$5 scopes
  shift 5
  scopes=$(printf '"%s",' "$@")
  printf '{"apiVersion":"imagepolicy.dev/v1alpha1","kind":"%s","metadata":{"name":"%s"%s},' \
    "$kind" "$name" "${ns:+,\"namespace\":\"$ns\"}"
  printf '"spec":{"scopes":[%s],"policy":{"rootOfTrust":%s%s}}}\n' \
    "${scopes%,}" "$root" "${id:+,\"signedIdentity\":$id}"
}
key() { printf '{"policyType":"PublicKey","publicKey":{"keyData":"%s"}}' "$(base64 -w0 "$work/k/$1.pub")"; }
REJECT='{"policyType":"Reject"}'
ACCEPT='{"policyType":"InsecureAcceptAnything"}'
for ns in team-a team-b; do
  node sh -c "cat > /tmp/pod-$ns.json" <<EOF
{"metadata":{"name":"pull","namespace":"$ns","uid":"$ns-pull","attempt":0},"log_directory":"/tmp/$ns","linux":{}}
EOF
done

expect_pull() { # allow|deny, namespace or -, repository:tag, text the refusal must contain
  local args=(crictl pull) out
  [ "$2" = - ] || args+=(--pod-config "/tmp/pod-$2.json")
  if out=$(node "${args[@]}" "$REG/$3" 2>&1); then
    node crictl rmi "$REG/$3" >/dev/null
    [ "$1" = allow ] || die "$3 (namespace $2) was pulled; expected a refusal"
    echo "ok: allowed $3 (namespace $2)"
  else
    [ "$1" = deny ] || die "$3 (namespace $2) was refused: $out"
    [[ "$out" == *"$4"* ]] || die "$3 (namespace $2): the refusal does not say '$4': $out"
    echo "ok: refused $3 (namespace $2): ${out##*desc = }"
  fi
}
NOSIG="A signature was required, but no signature exists"

say "key A required on signed/, unsigned/, wrong/"
policy ClusterImagePolicy signed-by-a "" "$(key a)" "" "$REG/signed" "$REG/unsigned" "$REG/wrong" | apply_wait
expect_pull allow - signed/app:v1
expect_pull deny - unsigned/app:v1 "$NOSIG"
expect_pull deny - wrong/app:v1 "cryptographic signature verification failed"

say "a namespace adds a requirement; it cannot loosen; deleting it falls back"
policy ImagePolicy require-b team-a "$(key b)" "" "$REG/signed/app" | apply_wait
expect_pull allow team-b signed/app:v1
expect_pull deny team-a signed/app:v1 "None of the signatures were accepted"
policy ImagePolicy loosen team-a "$ACCEPT" "" "$REG/unsigned" | apply_wait
expect_pull deny team-a unsigned/app:v1 "$NOSIG"
delete_wait -n team-a imagepolicy require-b loosen
node test ! -e /etc/crio/policies/team-a.json || die "team-a.json is still there"
expect_pull allow team-a signed/app:v1

say "'*' Reject with exceptions (the cluster's own images too: CRI-O re-checks at creation)"
policy ClusterImagePolicy exceptions "" "$ACCEPT" "" "$REG/base/pause" "$REG/imagepolicy-operator" \
  registry.k8s.io docker.io/kindest | apply_wait
policy ClusterImagePolicy default-deny "" "$REJECT" "" "*" | apply_wait
expect_pull allow - base/pause:v1
expect_pull deny - cosign/app:v1 "is rejected by policy"

say "RemapIdentity for a mirror; cosign by tag needs MatchRepository"
policy ClusterImagePolicy mirror "" "$(key a)" "" "$REG/mirror" | apply_wait
expect_pull deny - mirror/app:v1 'Signature for identity "registry.example.com/team/app:v1" is not accepted'
policy ClusterImagePolicy mirror "" "$(key a)" \
  "{\"matchPolicy\":\"RemapIdentity\",\"remapIdentity\":{\"prefix\":\"$REG/mirror\",\"signedPrefix\":\"registry.example.com/team\"}}" \
  "$REG/mirror" | apply_wait
expect_pull allow - mirror/app:v1
policy ClusterImagePolicy cosign "" "$(key cosign)" "" "$REG/cosign/app" | apply_wait
expect_pull deny - cosign/app:v1 "Signature for identity \"$REG/cosign/app\" is not accepted"
policy ClusterImagePolicy cosign "" "$(key cosign)" '{"matchPolicy":"MatchRepository"}' "$REG/cosign/app" | apply_wait
expect_pull allow - cosign/app:v1

say "a change takes effect on the next pull, no CRI-O restart"
pulled() { # repository:tag -> allowed|refused
  if node crictl pull "$REG/$1" >/dev/null 2>&1; then
    node crictl rmi "$REG/$1" >/dev/null
    echo allowed
  else echo refused; fi
}
for root in "$REJECT" "$(key a)"; do
  start=$(now_ms)
  policy ClusterImagePolicy flip "" "$root" "" "$REG/signed/app:v1" | k apply --server-side --field-manager=e2e -f -
  want=$([ "$root" = "$REJECT" ] && echo refused || echo allowed)
  until [ "$(pulled signed/app:v1)" = "$want" ]; do :; done
  echo "ok: kubectl apply -> pull result changed in $(($(now_ms) - start)) ms"
done
delete_wait clusterimagepolicy flip

say "30 pulls while the agent rewrites the files continuously"
policy ImagePolicy also-a team-b "$(key a)" "" "$REG/signed/app" | apply_wait
(while :; do for root in "$REJECT" "$ACCEPT"; do
  policy ClusterImagePolicy unrelated "" "$root" "" unrelated.example.com | k apply --server-side --field-manager=e2e -f - >/dev/null
done; done) &
toggler=$!
for _ in $(seq 1 15); do
  expect_pull allow - signed/app:v1
  expect_pull allow team-b signed/app:v1
done
kill "$toggler"
wait "$toggler" 2>/dev/null || true
delete_wait clusterimagepolicy unrelated
! node journalctl -u crio --no-pager | grep -Ei 'invalid policy|unexpected end of JSON' || die "CRI-O failed to parse a policy"

say "re-check at container creation: present image, namespace whose file refuses it"
policy ImagePolicy no-signed team-a "$REJECT" "" "$REG/signed" | apply_wait
node crictl pull "$REG/signed/app:v1" >/dev/null
node sh -c 'cat > /tmp/ctr.json' <<EOF
{"metadata":{"name":"app"},"image":{"image":"$REG/signed/app:v1"},"command":["true"],"log_path":"app.log"}
EOF
pod=$(node crictl runp /tmp/pod-team-a.json)
if out=$(node crictl create "$pod" /tmp/ctr.json /tmp/pod-team-a.json 2>&1); then
  die "container created in team-a: $out"
fi
[[ "$out" == *"rejected by policy"* ]] || die "create refused for another reason: $out"
echo "ok: create refused: ${out##*desc = }"
node crictl rmp -f "$pod" >/dev/null
delete_wait -n team-a imagepolicy no-signed

say "enforcement and rollout"
k get imagepolicynodestatus "$NODE" -o jsonpath='{.status.enforcingReason}{"\n"}'
wait_until "rollout 1/1" '[ "$(k get clusterimagepolicy signed-by-a -o jsonpath={.status.rollout.display})" = 1/1 ]'
[ "$(node systemctl show -p MainPID --value crio)" = "$crio_pid" ] || die "CRI-O restarted during the cases"
say "all cases passed"
