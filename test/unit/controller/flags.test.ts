import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FlagError, parseFlags } from "../../../src/controller/flags.ts";

describe("controller flags", () => {
  it("accepts exactly what config/manager/deployment.yaml passes", () => {
    const file = path.join(import.meta.dirname, "../../../config/manager/deployment.yaml");
    const deployment = parse(readFileSync(file, "utf8")) as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const [command, ...args] = deployment.spec.template.spec.containers[0]?.args ?? [];
    expect(command).toBe("controller");
    const config = parseFlags(
      args.map((a) =>
        a
          .replace("$(POD_NAMESPACE)", "imagepolicy-system")
          .replace("$(OPERATOR_IMAGE)", "ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0"),
      ),
      1,
    );
    expect(config?.namespace).toBe("imagepolicy-system");
    expect(config?.operatorImage).toBe("ghcr.io/imagepolicy-dev/imagepolicy-operator:v0.1.0");
  });

  it("refuses unknown flags", () => {
    expect(() => parseFlags(["--leader-elect"], 1)).toThrow(FlagError);
  });
});
