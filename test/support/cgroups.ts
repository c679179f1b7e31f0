// cgroupfs helpers for the processes tests start under a cgroup parent of their own (the pods of
// a test CRI-O or of a local node's kubelet).
import { readdirSync, readFileSync, rmdirSync } from "node:fs";
import path from "node:path";

/**
 * Kills every process under `parent` in every cgroup v1 hierarchy (and the v2 root, if mounted)
 * and removes the cgroups, deepest first.
 */
export function killCgroupTree(parent: string): void {
  const roots = ["/sys/fs/cgroup"];
  try {
    for (const e of readdirSync("/sys/fs/cgroup", { withFileTypes: true })) {
      if (e.isDirectory()) roots.push(path.join("/sys/fs/cgroup", e.name));
    }
  } catch {
    return;
  }
  for (let pass = 0; pass < 3; pass++) {
    for (const root of roots) {
      const dirs: string[] = [];
      const walk = (p: string): void => {
        let entries;
        try {
          entries = readdirSync(p, { withFileTypes: true });
        } catch {
          return;
        }
        dirs.push(p);
        for (const e of entries) if (e.isDirectory()) walk(path.join(p, e.name));
      };
      walk(path.join(root, parent));
      for (const p of dirs) {
        let procs: string;
        try {
          procs = readFileSync(path.join(p, "cgroup.procs"), "utf8");
        } catch {
          continue;
        }
        for (const line of procs.split("\n")) {
          const pid = Number(line);
          if (Number.isInteger(pid) && pid > 0) {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // already gone
            }
          }
        }
      }
      for (const p of dirs.reverse()) {
        try {
          rmdirSync(p);
        } catch {
          // still busy (a process exiting); the next pass retries
        }
      }
    }
  }
}
