import { defineConfig } from "vitest/config";

// Five projects (README "The two commands"): `unit` is pure and fast; `evaluator` runs the real
// containers-image evaluator (skopeo) against a local registry; `apiserver` a real kube-apiserver,
// etcd and kube-controller-manager; `e2e` a real CRI-O behind the whole chain; `node` a real
// kubelet + CRI-O node running the operator image and the shipped manifests. Components are
// built or fetched by hack/tools/ensure-all.sh; a test that cannot find one fails, never skips.
//
// vitest runs every project at once unless `sequence.groupOrder` says otherwise. The first four
// share group 0 as before; `node` (a control plane, a kubelet, CRI-O, three operator pods and
// several test pods on 2 cores) runs alone afterwards, in group 1, so it neither starves the
// others nor is starved into timeouts by them.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "evaluator",
          sequence: { groupOrder: 0 },
          include: ["test/evaluator/**/*.test.ts"],
          globalSetup: ["test/evaluator/globalSetup.ts"],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "apiserver",
          sequence: { groupOrder: 0 },
          include: ["test/apiserver/**/*.test.ts"],
          // A cold build of the control plane (when hack/tools/ensure-all.sh did not run first)
          // takes many minutes inside beforeAll.
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          sequence: { groupOrder: 0 },
          include: ["test/e2e/**/*.test.ts"],
          // The evaluator's registry and signed/unsigned images and keys (inject("evaluator")),
          // used by test/e2e/pulls.test.ts.
          globalSetup: ["test/evaluator/globalSetup.ts"],
          // A real CRI-O (hack/tools/crio.sh) and a local registry; a cold CRI-O build inside
          // beforeAll takes several minutes.
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "node",
          sequence: { groupOrder: 1 },
          include: ["test/node/**/*.test.ts"],
          // The whole cluster starts in beforeAll (test/support/localCluster.ts); cold builds of
          // the kubelet, CNI plugins and images run there when ensure-all.sh did not run first.
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
