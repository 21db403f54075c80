"""A whole cluster from one workstation: the order of work, SSH to each host, the offline
package, the cluster file and what the user sees meanwhile. Drives each host's own commands."""
