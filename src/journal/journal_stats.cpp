#include "journal/journal_stats.hpp"

#include <lmdb.h>

#include <system_error>

namespace flightlog::detail {

namespace {

std::string failure(const char* what, const std::filesystem::path& dir, int rc) {
  return std::string(what) + " '" + dir.string() + "': " + mdb_strerror(rc);
}

}  // namespace

std::string read_journal_space(const std::filesystem::path& dir, JournalSpace& out) {
  out = JournalSpace{};
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return failure("cannot create an LMDB environment for", dir, rc);
  mdb_env_set_maxdbs(env, 8);
  rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOTLS, 0600);
  MDB_txn* txn = nullptr;
  if (rc == 0) {
    rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) {         // a writer grew the map since we opened it
      rc = mdb_env_set_mapsize(env, 0);  // if it fails, the env has no map: do not use it
      if (rc == 0) rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
    }
  }
  if (rc != 0) {
    mdb_env_close(env);
    return failure("cannot read the page accounting of journal", dir, rc);
  }
  MDB_envinfo info{};
  MDB_stat st{};
  mdb_env_info(env, &info);
  mdb_env_stat(env, &st);
  out.map_bytes = info.me_mapsize;
  out.page_bytes = st.ms_psize;
  out.pages_used = info.me_last_pgno + 1;
  out.readers = info.me_numreaders;
  out.max_readers = info.me_maxreaders;
  if (out.page_bytes != 0) {
    const std::uint64_t map_pages = out.map_bytes / out.page_bytes;
    out.pages_never_used = map_pages > out.pages_used ? map_pages - out.pages_used : 0;
  }
  // The free list is LMDB's database 0: each value is a page-number list whose first
  // element is its length.
  MDB_cursor* cursor = nullptr;
  if (mdb_cursor_open(txn, 0, &cursor) == 0) {
    MDB_val k, v;
    for (int r = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); r == 0;
         r = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      if (v.mv_size >= sizeof(std::size_t)) {
        std::size_t n = 0;
        __builtin_memcpy(&n, v.mv_data, sizeof n);
        out.pages_free += n;
      }
    }
    mdb_cursor_close(cursor);
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  std::error_code ec;
  const auto size = std::filesystem::file_size(dir / "data.mdb", ec);
  if (!ec) out.file_bytes = static_cast<std::size_t>(size);
  return {};
}

}  // namespace flightlog::detail
