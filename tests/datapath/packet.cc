#include "tests/datapath/packet.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lockd::testing {
namespace {

constexpr size_t kEthLen = sizeof(ethhdr);
constexpr size_t kIpLen = sizeof(iphdr);
constexpr size_t kUdpLen = sizeof(udphdr);
constexpr size_t kHeadersLen = kEthLen + kIpLen + kUdpLen;

uint32_t SumWords(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len % 2) sum += p[len - 1] << 8;
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t IpChecksum(const uint8_t* ip) {
  uint8_t copy[kIpLen];
  memcpy(copy, ip, kIpLen);
  copy[10] = copy[11] = 0;
  return Fold(SumWords(copy, kIpLen, 0));
}

uint16_t UdpChecksum(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  uint32_t sum = SumWords(ip + 12, 8, 0);  // source and destination
  sum += IPPROTO_UDP + udp_len;
  Bytes copy(udp, udp + udp_len);
  copy[6] = copy[7] = 0;
  uint16_t check = Fold(SumWords(copy.data(), copy.size(), sum));
  return check == 0 ? 0xffff : check;
}

void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = v >> (24 - 8 * i);
}

uint16_t Get16(const uint8_t* p) { return (p[0] << 8) | p[1]; }

std::string Mac(const uint8_t* p) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2],
                         p[3], p[4], p[5]);
}

std::string Ip(const uint8_t* p) {
  return absl::StrFormat("%d.%d.%d.%d", p[0], p[1], p[2], p[3]);
}

}  // namespace

Endpoint ServerEndpoint(uint16_t port) {
  return {{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}, 0xc6120001, port};
}

Endpoint ClientEndpoint(int n) {
  return {{0x02, 0x00, 0x5e, 0x00, 0x01, static_cast<uint8_t>(n)},
          0xc6120002u + static_cast<uint32_t>(n),
          static_cast<uint16_t>(40000 + n)};
}

lockd_endpoint ClientAbiEndpoint(int n) {
  const Endpoint e = ClientEndpoint(n);
  lockd_endpoint ep{};
  memcpy(ep.mac, e.mac.data(), sizeof(ep.mac));
  ep.addr = htonl(e.addr);
  ep.port = htons(e.port);
  return ep;
}

Bytes BuildUdpFrame(const Endpoint& from, const Endpoint& to,
                    absl::Span<const uint8_t> payload) {
  Bytes frame(kHeadersLen + payload.size());
  uint8_t* eth = frame.data();
  memcpy(eth, to.mac.data(), 6);
  memcpy(eth + 6, from.mac.data(), 6);
  Put16(eth + 12, ETH_P_IP);
  uint8_t* ip = eth + kEthLen;
  ip[0] = 0x45;
  Put16(ip + 2, kIpLen + kUdpLen + payload.size());
  Put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  Put32(ip + 12, from.addr);
  Put32(ip + 16, to.addr);
  Put16(ip + 10, IpChecksum(ip));
  uint8_t* udp = ip + kIpLen;
  Put16(udp, from.port);
  Put16(udp + 2, to.port);
  Put16(udp + 4, kUdpLen + payload.size());
  memcpy(udp + kUdpLen, payload.data(), payload.size());
  Put16(udp + 6, UdpChecksum(ip, udp, kUdpLen + payload.size()));
  return frame;
}

Bytes BuildFrame(const Endpoint& from, const Endpoint& to,
                 const Message& message) {
  EncodedMessage encoded = Encode(message);
  return BuildUdpFrame(from, to, encoded);
}

absl::StatusOr<Message> MessageOf(absl::Span<const uint8_t> frame) {
  if (frame.size() < kHeadersLen)
    return absl::InvalidArgumentError(
        absl::StrCat("frame of ", frame.size(), " bytes has no UDP payload"));
  return DecodeMessage(frame.subspan(kHeadersLen));
}

std::string DescribeFrame(absl::Span<const uint8_t> f) {
  if (f.size() < kEthLen) return absl::StrCat("runt frame, ", f.size(), " B");
  std::string out =
      absl::StrCat("  eth ", Mac(f.data() + 6), " -> ", Mac(f.data()),
                   absl::StrFormat(" type 0x%04x", Get16(&f[12])));
  if (Get16(&f[12]) != ETH_P_IP || f.size() < kEthLen + kIpLen) return out;
  const uint8_t* ip = f.data() + kEthLen;
  absl::StrAppend(&out, "\n  ip  ", Ip(ip + 12), " -> ", Ip(ip + 16), " len ",
                  Get16(ip + 2), " ttl ", ip[8], " proto ", ip[9], " csum ",
                  Get16(ip + 10) == IpChecksum(ip) ? "ok" : "BAD");
  if (ip[9] != IPPROTO_UDP || f.size() < kHeadersLen) return out;
  const uint8_t* udp = ip + kIpLen;
  size_t udp_len = Get16(udp + 4);
  bool fits = kEthLen + kIpLen + udp_len <= f.size() && udp_len >= kUdpLen;
  absl::StrAppend(
      &out, "\n  udp ", Get16(udp), " -> ", Get16(udp + 2), " len ", udp_len,
      " csum ",
      !fits ? "?"
            : (Get16(udp + 6) == UdpChecksum(ip, udp, udp_len) ? "ok" : "BAD"));
  absl::StatusOr<Message> message = MessageOf(f);
  absl::StrAppend(
      &out, "\n  msg ",
      message.ok() ? message->ToString()
                   : absl::StrCat("undecodable: ", message.status().message()));
  return out;
}

std::string DiffFrames(absl::Span<const uint8_t> expected,
                       absl::Span<const uint8_t> actual) {
  std::string out = absl::StrCat(
      "expected:\n", DescribeFrame(expected), "\nactual:\n",
      DescribeFrame(actual), "\nbytes (offset: expected/actual, * = differs):");
  size_t n = std::max(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 0) absl::StrAppend(&out, absl::StrFormat("\n  %04zx:", i));
    std::string e =
        i < expected.size() ? absl::StrFormat("%02x", expected[i]) : "--";
    std::string a =
        i < actual.size() ? absl::StrFormat("%02x", actual[i]) : "--";
    absl::StrAppend(&out, " ", e, "/", a, e == a ? " " : "*");
  }
  return out;
}

}  // namespace lockd::testing
