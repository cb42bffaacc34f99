//! Writes what abi.zig declares in the other languages: the marked
//! sections of the C headers and the whole of src/abi.ts. Run by
//! `zig build` (build.zig), which copies the outputs into the source tree.
//!
//!   gen_abi TS_OUT [HEADER_IN HEADER_OUT]...
//!
//! A header section is the text between a line
//!   /* generated: NAME (from zig/abi.zig by zig build: do not edit) */
//! and a line `/* end generated: NAME */`; everything else is kept as it
//! is. An unknown name, an unterminated section or a section missing from
//! every header fails the build, so nothing declared here goes unwritten.

const std = @import("std");
const abi = @import("abi");

const Writer = std.ArrayList(u8).Writer;

const begin_prefix = "/* generated: ";
const begin_suffix = " (from zig/abi.zig by zig build: do not edit) */";
const end_prefix = "/* end generated: ";

/// The sections a header may hold, by name.
const sections = [_]struct { name: []const u8, write: *const fn (Writer) anyerror!void }{
    .{ .name = "results", .write = writeResults },
    .{ .name = "limits", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.limits);
        }
    }.f },
    .{ .name = "quotas", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.quotas);
        }
    }.f },
    .{ .name = "modes", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.modes);
        }
    }.f },
    .{ .name = "kill_flags", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.kill_flags);
        }
    }.f },
    .{ .name = "exit_message_size", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &.{abi.exit_message_size});
        }
    }.f },
    .{ .name = "event_constants", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.event_constants);
        }
    }.f },
    .{ .name = "event_ops", .write = struct {
        fn f(w: Writer) !void {
            try writeDefines(w, &abi.event_ops);
        }
    }.f },
    .{ .name = "ServerConn", .write = structWriter(abi.ServerConn) },
    .{ .name = "ExitEvent", .write = structWriter(abi.ExitEvent) },
    .{ .name = "StartOptions", .write = structWriter(abi.StartOptions) },
    .{ .name = "ForkRequest", .write = structWriter(abi.ForkRequest) },
    .{ .name = "Reply", .write = structWriter(abi.Reply) },
    .{ .name = "EventRecord", .write = structWriter(abi.EventRecord) },
    .{ .name = "EventRequest", .write = structWriter(abi.EventRequest) },
    .{ .name = "SpawnRequest", .write = structWriter(abi.SpawnRequest) },
};

pub fn main() !void {
    var arena_state = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const args = try std.process.argsAlloc(arena);
    if (args.len < 2 or (args.len - 2) % 2 != 0) fatal("usage: gen_abi TS_OUT [HEADER_IN HEADER_OUT]...", .{});

    var used = [_]bool{false} ** sections.len;
    var i: usize = 2;
    while (i < args.len) : (i += 2) {
        const template = try std.fs.cwd().readFileAlloc(arena, args[i], 1 << 20);
        const header = try fillHeader(arena, args[i], template, &used);
        try std.fs.cwd().writeFile(.{ .sub_path = args[i + 1], .data = header });
    }
    for (sections, used) |section, was_used| {
        if (!was_used) fatal("no header has the section '{s}'", .{section.name});
    }

    var ts = std.ArrayList(u8).init(arena);
    try writeTypeScript(ts.writer());
    try std.fs.cwd().writeFile(.{ .sub_path = args[1], .data = ts.items });
}

fn fatal(comptime format: []const u8, args: anytype) noreturn {
    std.debug.print("gen_abi: " ++ format ++ "\n", args);
    std.process.exit(1);
}

fn fillHeader(arena: std.mem.Allocator, path: []const u8, template: []const u8, used: []bool) ![]u8 {
    var out = std.ArrayList(u8).init(arena);
    var lines = std.mem.splitScalar(u8, template, '\n');
    var first = true;
    while (lines.next()) |line| {
        if (!first) try out.append('\n');
        first = false;
        try out.appendSlice(line);
        if (!std.mem.startsWith(u8, line, begin_prefix)) continue;
        const name_end = std.mem.indexOfScalarPos(u8, line, begin_prefix.len, ' ') orelse line.len;
        const name = line[begin_prefix.len..name_end];
        if (!std.mem.eql(u8, line[name_end..], begin_suffix)) fatal("{s}: malformed line: {s}", .{ path, line });
        const index = for (sections, 0..) |section, n| {
            if (std.mem.eql(u8, section.name, name)) break n;
        } else fatal("{s}: unknown section '{s}'", .{ path, name });
        if (used[index]) fatal("{s}: section '{s}' appears twice", .{ path, name });
        used[index] = true;
        try out.append('\n');
        try sections[index].write(out.writer());
        const end_line = try std.fmt.allocPrint(arena, "{s}{s} */", .{ end_prefix, name });
        while (lines.next()) |skipped| {
            if (std.mem.eql(u8, skipped, end_line)) break;
            if (std.mem.startsWith(u8, skipped, begin_prefix)) fatal("{s}: section '{s}' is not ended", .{ path, name });
        } else fatal("{s}: section '{s}' is not ended", .{ path, name });
        try out.appendSlice(end_line);
    }
    return out.items;
}

// ---------------------------------------------------------------- C

/// Comments of struct fields wrap at this column; those of single-line
/// declarations do not wrap.
const comment_width = 80;
/// Declarations longer than this do not push the comment column right
/// (the function pointer of libforks_ForkRequest).
const max_aligned_decl = 32;

fn writeResults(w: Writer) !void {
    const fields = @typeInfo(abi.Result).@"enum".fields;
    // The seed's codes and the added ones align their comments apart.
    var seed_width: usize = 0;
    var added_width: usize = 0;
    inline for (fields) |field| {
        const result: abi.Result = @enumFromInt(field.value);
        const width = if (result.doc().len == 0) 0 else std.fmt.count("  libforks_{s} = {d},", .{ field.name, field.value });
        if (field.value > @intFromEnum(abi.Result.first_added)) seed_width = @max(seed_width, width) else added_width = @max(added_width, width);
    }
    try w.writeAll("typedef enum {\n");
    inline for (fields) |field| {
        const result: abi.Result = @enumFromInt(field.value);
        if (result == abi.Result.first_added) try w.writeAll("  /* Codes added by this implementation (only ever appended). */\n");
        var buffer: [128]u8 = undefined;
        const decl = try std.fmt.bufPrint(&buffer, "  libforks_{s} = {d},", .{ field.name, field.value });
        const width = if (field.value > @intFromEnum(abi.Result.first_added)) seed_width else added_width;
        try writeWithComment(w, decl, width, result.doc(), false);
    }
    try w.writeAll("} libforks_Result;\n");
}

fn writeDefines(w: Writer, constants: []const abi.Constant) !void {
    var width: usize = 0;
    for (constants) |constant| width = @max(width, std.fmt.count("#define {s} {d}", .{ constant.c_name, constant.value }));
    for (constants) |constant| {
        var buffer: [128]u8 = undefined;
        const decl = try std.fmt.bufPrint(&buffer, "#define {s} {d}", .{ constant.c_name, constant.value });
        try writeWithComment(w, decl, width, constant.doc, false);
    }
}

/// `decl`, then `doc` as a comment starting at column width + 1 (or one
/// space after a longer decl), wrapped under itself if `wrap`.
fn writeWithComment(w: Writer, decl: []const u8, width: usize, doc: []const u8, wrap: bool) !void {
    try w.writeAll(decl);
    if (doc.len == 0) return w.writeByte('\n');
    try w.writeByteNTimes(' ', if (decl.len < width) width - decl.len + 1 else 1);
    try w.writeAll("/* ");
    const indent = width + 1 + 3;
    var column = @max(width, decl.len) + 1 + 3;
    var words = std.mem.tokenizeScalar(u8, doc, ' ');
    var first = true;
    while (words.next()) |word| {
        if (wrap and !first and column + 1 + word.len + 3 > comment_width) {
            try w.writeByte('\n');
            try w.writeByteNTimes(' ', indent);
            column = indent;
        } else if (!first) {
            try w.writeByte(' ');
            column += 1;
        }
        try w.writeAll(word);
        column += word.len;
        first = false;
    }
    try w.writeAll(" */\n");
}

fn structWriter(comptime T: type) *const fn (Writer) anyerror!void {
    return struct {
        fn f(w: Writer) anyerror!void {
            try writeStruct(w, T);
        }
    }.f;
}

fn writeStruct(w: Writer, comptime T: type) !void {
    const fields = @typeInfo(T).@"struct".fields;
    comptime std.debug.assert(@typeInfo(T).@"struct".layout == .@"extern");
    var decls: [fields.len][]const u8 = undefined;
    var width: usize = 0;
    inline for (fields, 0..) |field, n| {
        const c_field: abi.CField = @field(T.c_fields, field.name);
        decls[n] = try std.fmt.allocPrint(std.heap.page_allocator, "  {s};", .{cDeclaration(field.type, c_field.c_type, field.name)});
        if (decls[n].len <= max_aligned_decl) width = @max(width, decls[n].len);
    }
    const one_line = fields.len == 1 and @field(T.c_fields, fields[0].name).doc.len == 0;
    if (one_line) return w.print("typedef struct {{ {s} }} {s};\n", .{ std.mem.trimLeft(u8, decls[0], " "), T.c_name });
    try w.writeAll("typedef struct {\n");
    inline for (fields, 0..) |field, n| {
        try writeWithComment(w, decls[n], width, @field(T.c_fields, field.name).doc, true);
    }
    try w.print("}} {s};\n", .{T.c_name});
}

/// The C declaration of a field named `name` of Zig type T. A C type given
/// in abi.zig must have T's size and alignment.
fn cDeclaration(comptime T: type, comptime given: ?[]const u8, comptime name: []const u8) []const u8 {
    if (given) |c_type| {
        const known = .{
            .{ "pid_t", 4 },
            .{ "int", 4 },
            .{ "struct rusage", 144 },
            // Bytes where a C type's size differs between C libraries
            // (musl's struct rusage is longer than the 144 sent).
            .{ "unsigned char[144]", 144 },
            .{ "unsigned char[68]", 68 },
        };
        inline for (known) |entry| {
            if (comptime std.mem.eql(u8, entry[0], c_type)) {
                if (@sizeOf(T) != entry[1]) @compileError("C type " ++ c_type ++ " does not have the size of field " ++ name);
                if (comptime std.mem.indexOfScalar(u8, c_type, '[')) |bracket| return c_type[0..bracket] ++ " " ++ name ++ c_type[bracket..];
                return c_type ++ " " ++ name;
            }
        }
        @compileError("unknown C type " ++ c_type ++ " for field " ++ name);
    }
    return switch (T) {
        usize => "size_t " ++ name,
        c_int => "int " ++ name,
        i32 => "int32_t " ++ name,
        i64 => "int64_t " ++ name,
        u32 => "uint32_t " ++ name,
        u64 => "uint64_t " ++ name,
        bool => "bool " ++ name,
        ?[*:0]const u8, ?[*]const u8 => "const char *" ++ name,
        ?[*]const c_int => "const int *" ++ name,
        ?*anyopaque => "void *" ++ name,
        ?abi.Entrypoint => "void (*" ++ name ++ ")(libforks_ServerConn conn, int socket_fd)",
        else => @compileError("no C type for field " ++ name ++ " (" ++ @typeName(T) ++ "): give one in c_fields"),
    };
}

// ---------------------------------------------------------------- TypeScript

fn writeTypeScript(w: Writer) !void {
    try w.writeAll(
        \\// Generated by `zig build` from zig/abi.zig (zig/gen_abi.zig): do not
        \\// edit. The C contract as the package reads it: result codes, limits,
        \\// flags, and struct layouts (byte offsets and sizes as Zig lays out the
        \\// extern structs, which is the C layout of lib/include/libforks.h).
        \\
        \\/** libforks_Result values by name. */
        \\export const Result = {
        \\
    );
    const fields = @typeInfo(abi.Result).@"enum".fields;
    inline for (fields) |field| try w.print("  {s}: {d},\n", .{ field.name, field.value });
    try w.writeAll(
        \\} as const;
        \\
        \\/** The name of a libforks_Result value. */
        \\export type ResultName = keyof typeof Result;
        \\
        \\/** Names of libforks_Result values, as libforks_result_string gives them. */
        \\export const resultNames: Readonly<Record<number, ResultName>> = {
        \\
    );
    inline for (fields) |field| {
        if (field.value < 0) try w.print("  [{d}]: \"{s}\",\n", .{ field.value, field.name }) else try w.print("  {d}: \"{s}\",\n", .{ field.value, field.name });
    }
    try w.writeAll("};\n");

    try writeConstants(w, "limits", "Fixed limits (LIBFORKS_MAX_*).", &abi.limits);
    try writeConstants(w, "quotas", "What one child may hold, and the owner's reserve.", &abi.quotas);
    try writeConstants(w, "modes", "libforks_StartOptions.mode (libforks_MODE_*).", &abi.modes);
    try writeConstants(w, "killFlags", "libforks_kill_async's flags.", &abi.kill_flags);
    try writeConstants(w, "watchEvents", "libforks_watch's events, and those of a doorbell record.", &abi.watch_events);
    try writeConstants(w, "eventStream", "An event stream's records (libforks_EVENT_*).", &abi.event_constants);
    try writeConstants(w, "eventOps", "libforks_EventRequest.op (libforks_EVENT_OP_*).", &abi.event_ops);
    try w.print(
        \\
        \\/** A doorbell record: a little-endian u64, token | events << tokenBits. */
        \\export const doorbellRecord = {{ size: {d}, tokenBits: {d} }} as const;
        \\
        \\/** libforks_EXIT_MESSAGE_SIZE: an exit event and the rusage after it. */
        \\export const exitMessageSize = {d};
        \\
        \\/** libforks_read_exec_result's failed steps. */
        \\export const ExecStep = {{
        \\
    , .{ abi.doorbell_record_size, abi.doorbell_token_bits, abi.exit_message_size.value });
    inline for (@typeInfo(abi.ExecStep).@"enum".fields) |field| try w.print("  {s}: {d},\n", .{ field.name, field.value });
    try w.writeAll("} as const;\n");

    inline for (abi.structs) |T| try writeLayout(w, T);
}

fn writeConstants(w: Writer, name: []const u8, doc: []const u8, constants: []const abi.Constant) !void {
    try w.print("\n/** {s} */\nexport const {s} = {{\n", .{ doc, name });
    for (constants) |constant| try w.print("  {s}: {d},\n", .{ constant.ts_name, constant.value });
    try w.writeAll("} as const;\n");
}

fn writeLayout(w: Writer, comptime T: type) !void {
    const short = comptime std.mem.trimLeft(u8, @typeName(T)[std.mem.lastIndexOfScalar(u8, @typeName(T), '.').? + 1 ..], " ");
    // ExitMessage has no C name: the header gives only its size.
    const c_name = if (@hasDecl(T, "c_name")) T.c_name else if (T == abi.rusage) "struct rusage" else "libforks_ExitEvent then struct rusage (libforks_EXIT_MESSAGE_SIZE)";
    const fields = @typeInfo(T).@"struct".fields;
    try w.print("\n/** {s}: {d} bytes. */\nexport const {s} = {{\n  size: {d},\n  offset: {{\n", .{ c_name, @sizeOf(T), tsTypeName(short), @sizeOf(T) });
    inline for (fields) |field| try w.print("    {s}: {d},\n", .{ field.name, @offsetOf(T, field.name) });
    try w.writeAll("  },\n  width: {\n");
    inline for (fields) |field| try w.print("    {s}: {d},\n", .{ field.name, @sizeOf(field.type) });
    try w.writeAll("  },\n} as const;\n");
}

fn tsTypeName(comptime short: []const u8) []const u8 {
    if (std.mem.eql(u8, short, "rusage")) return "Rusage";
    return short;
}
