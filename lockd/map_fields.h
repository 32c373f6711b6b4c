// Reaching into the datapath's maps from user space: single fields of the
// mmapped maps (config, pool_info, table_seg_live, table_seg_state), which
// the BPF programs change concurrently, read and written atomically; and the
// inner maps of an outer map.
#ifndef LOCKD_LOCKD_MAP_FIELDS_H_
#define LOCKD_LOCKD_MAP_FIELDS_H_

#include <bpf/bpf.h>

#include <cstdint>

namespace lockd {

template <typename T>
T Load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

template <typename T, typename V>
void Store(T* p, V v) {
  __atomic_store_n(p, static_cast<T>(v), __ATOMIC_RELEASE);
}

// A new fd of the inner map in slot `slot` of `outer_fd` (user space sees
// inner map ids there), or -1 when the slot is empty. The caller closes it.
inline int InnerMapFd(int outer_fd, uint32_t slot) {
  uint32_t id = 0;
  if (bpf_map_lookup_elem(outer_fd, &slot, &id) != 0 || id == 0) return -1;
  return bpf_map_get_fd_by_id(id);
}

}  // namespace lockd

#endif  // LOCKD_LOCKD_MAP_FIELDS_H_
