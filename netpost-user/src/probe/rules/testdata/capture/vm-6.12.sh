#!/bin/bash
# Runs inside a 6.12 VM: a namespace with nft, iptables-nft, iptables-legacy rules and conntrack,
# then the kernel's hook list through `nft list hooks` (the oracle) and raw NFNL_MSG_HOOK_GET dumps.
set -x
cd "$(dirname "$0")"  # with nl.py, dump.py and (optionally) a netpost binary
exec > vm.log 2>&1
uname -r
ip netns add hk
N="ip netns exec hk"
$N ip link set lo up
$N iptables -A FORWARD -p udp --dport 9 -j DROP
$N iptables -A OUTPUT -m conntrack --ctstate INVALID -j DROP
$N iptables-legacy -A OUTPUT -p udp --dport 10 -j DROP
$N ip6tables-legacy -A INPUT -p udp --dport 10 -j DROP
$N nft -f - <<'NFT'
table inet t {
  chain out { type filter hook output priority 5; policy accept; udp dport 11 counter drop; }
  chain fw { type filter hook forward priority -7; policy accept; udp dport 11 counter drop; }
}
table ip nt { chain pre { type nat hook prerouting priority dstnat; policy accept; }; }
NFT
$N nft list hooks
for f in ip ip6 inet; do echo "== nft list hooks $f"; $N nft list hooks $f; done
# family 2 = ipv4, 10 = ipv6; hooks 0..4
for fam in 2 10; do for hook in 0 1 2 3 4; do
  $N python3 dump.py hooks_${fam}_${hook}.bin 12 0 $fam 769 1:be32:$hook
done; done
if [ -x ./netpost ]; then
  $N ./netpost -i lo --xdp-mode off --no-tui --json /dev/null --duration 90 2> netpost.err &
  sleep 45
  $N nft list hooks ip
  for hook in 1 3; do $N python3 dump.py hooks_bpf_2_${hook}.bin 12 0 2 769 1:be32:$hook; done
  wait
fi
ls -la
