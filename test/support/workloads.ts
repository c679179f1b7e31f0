// The test workloads of the local node (test/node, hack/demo): one busybox container that sleeps
// (hack/tools/node-images.sh `app`), Burstable (a small request, no limit: the kubelet gives it an
// oom_score_adj it may raise to), pulled on every start so each pod is checked by CRI-O again.
import { stringify } from "yaml";

function container(image: string): object {
  return {
    name: "app",
    image,
    imagePullPolicy: "Always",
    command: ["/bin/sleep", "3600"],
    resources: { requests: { cpu: "10m", memory: "16Mi" } },
  };
}

/** A one-replica Deployment labelled `app: <name>`. */
export function sleeperDeployment(namespace: string, name: string, image: string): string {
  const labels = { app: name };
  return stringify({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { terminationGracePeriodSeconds: 1, containers: [container(image)] },
      },
    },
  });
}

/** A bare Pod: one attempt per pod, no controller to replace it. */
export function sleeperPod(namespace: string, name: string, image: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: { terminationGracePeriodSeconds: 1, containers: [container(image)] },
  });
}
