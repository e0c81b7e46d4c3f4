"""Prints the path of each resource file that deploy/k8s/kustomization.yaml lists, one per line: what
check-deploy.sh validates when kubectl cannot render the kustomization.

Usage: python3 scripts/checks/kustomize_resources.py  (from the repository root).
"""
import sys

import yaml


def main():
    with open("deploy/k8s/kustomization.yaml") as f:
        k = yaml.safe_load(f)
    for r in k.get("resources", []):
        print("deploy/k8s/" + r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
