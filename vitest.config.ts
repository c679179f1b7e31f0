import { defineConfig } from "vitest/config";

// Four projects (README "The two commands"): `unit` is pure and fast; `evaluator` runs the real
// containers-image evaluator (skopeo) against a local registry; `apiserver` a real kube-apiserver,
// etcd and kube-controller-manager; `e2e` a real CRI-O behind the whole chain. Components are
// built or fetched by hack/tools/ensure-all.sh; a test that cannot find one fails, never skips.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "evaluator",
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
    ],
  },
});
