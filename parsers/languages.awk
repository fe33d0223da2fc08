# parsers/languages.awk — turns languages.tsv into the C table parsers/registry.c includes:
# one LANG(name, ids, extensions, file names, shebangs, line comment, block comment, grammar, approx,
# indent blocks) per row, '-' becoming NULL.
function cstr(s) {
    if (s == "-") return "NULL"
    gsub(/\\/, "\\\\\\\\", s)
    gsub(/"/, "\\\\\"", s)
    return "\"" s "\""
}
BEGIN { FS = "\t" }
/^#/ || NF == 0 { next }
NF != 10 { printf "languages.tsv:%d: %d columns, want 10\n", NR, NF > "/dev/stderr"; exit 1 }
{
    printf "LANG(%s, %s, %s, %s, %s, %s, %s, %s, %d, %d)\n", cstr($1), cstr($2), cstr($3), cstr($4), cstr($5),
        cstr($6), cstr($7), cstr($8), $9 == "approx", $10 == "indent"
}
