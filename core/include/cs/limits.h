// Every bound of the store, named, with its unit last. Each is a default: the
// ones a deployment may change are also fields of EventLogOptions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cs::limits {

// One event's canonical stored bytes (envelope + payload).
inline constexpr std::size_t event_size_bytes_max = 1 << 20;
// One JSON line given to `csctl append` / `csctl import`.
inline constexpr std::size_t json_line_bytes_max = 2 << 20;
// Events in one call to EventLog::append (one atomic unit).
inline constexpr std::size_t append_events_max = 10'000;
// Events merged into one group commit (one write batch, one WAL sync).
inline constexpr std::size_t group_commit_events_max = 16'384;
// Positions in one index block (one stream's or one type's, written by a
// group commit or a bulk chunk): what a read that starts inside a block
// decodes, at most. Longer runs are split into several blocks.
inline constexpr std::size_t index_block_entries_max = 16'384;
// A bulk writer's chunk (EventLog::BulkWriter: csctl append and import):
// staged bytes (events and their index entries) committed in one atomic
// step, and held in memory until then.
inline constexpr std::size_t bulk_chunk_bytes_max = 32 << 20;
// Bulk chunks of fewer events and fewer bytes are written through the
// write-ahead log: an ingest adds a table file to most of the log's
// families, which compactions then merge, so it pays only for large chunks.
inline constexpr std::size_t bulk_ingest_events_min = 4'096;
inline constexpr std::size_t bulk_ingest_bytes_min = 8 << 20;
// Appenders waiting for the group-commit leader before append says "retriable".
inline constexpr std::size_t append_queue_depth_max = 1'024;
// Stream heads the group-commit leader keeps in memory (about 100 bytes
// each); past it the cache starts over and heads are read from the index.
inline constexpr std::size_t stream_head_cache_entries_max = 1 << 18;
// The largest record the distributor produces: an event's full-log line is
// its stored bytes as JSON, where escaping grows a string at most 6x (a
// control byte becomes \u00XX), plus the envelope. The producer's
// message.max.bytes and the topics' max.message.bytes are set from it, so
// every event the log accepts can be published.
inline constexpr std::size_t published_record_bytes_max = 6 * event_size_bytes_max + (64 << 10);
// A stream name ("customer-<uuid>" is 45 bytes).
inline constexpr std::size_t stream_name_bytes_max = 128;
// A token amount or a price; keeps sums of a whole history far from overflow.
inline constexpr std::int64_t amount_max = 1'000'000'000'000;
// One token account's purchased + allocated, and its used, over its whole
// life: a thousand maximal amounts. Sums of any account stay far inside 64
// bits; appends that would pass it are refused.
inline constexpr std::int64_t token_total_max = 1'000 * amount_max;
// Side writes (EventLog::append) in one append, and their keys and values.
inline constexpr std::size_t side_writes_max = 2048;
inline constexpr std::size_t side_write_bytes_max = 32 << 20;
// Fields named in one `updatedFields`.
inline constexpr std::size_t updated_fields_max = 64;
// Nesting of arrays and objects in any JSON text the store reads (event lines,
// `changes` values, configuration files). Deeper input is refused before it is
// parsed, so no parser recursion can exhaust the stack.
inline constexpr std::size_t json_depth_max = 64;
// Input lines in one parsed batch of `csctl append` / `import` (a batch is
// handed over early when its lines reach this many bytes): with the batches
// waiting and the chunk being staged, what bounds their memory for huge lines.
inline constexpr std::size_t append_pending_bytes_max = 16 << 20;
// `sourceService`.
inline constexpr std::size_t service_name_bytes_max = 64;

}  // namespace cs::limits
