// Single fields of the mmapped maps (config, pool_info, table_seg_live),
// which the BPF programs change concurrently: read and written atomically.
#ifndef LOCKD_LOCKD_MAP_FIELDS_H_
#define LOCKD_LOCKD_MAP_FIELDS_H_

namespace lockd {

template <typename T>
T Load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

template <typename T, typename V>
void Store(T* p, V v) {
  __atomic_store_n(p, static_cast<T>(v), __ATOMIC_RELEASE);
}

}  // namespace lockd

#endif  // LOCKD_LOCKD_MAP_FIELDS_H_
