namespace FlashAttention.Cpu;

/// <summary>
/// A tile of packed query rows (see <see cref="QueryRowBlock"/>) of one sequence and kv head:
/// the unit of work of the forward and of the dQ pass, with the union of its rows' visible keys.
/// </summary>
internal readonly record struct QueryTile(int Sequence, int KvHead, int FirstRow, int RowCount, int KeyBegin, int KeyEnd)
{
    /// <summary>Relative cost for longest-first scheduling: scores computed, plus the row epilogue.</summary>
    public long Cost => (long)RowCount * (KeyEnd - KeyBegin + 1);

    /// <summary>Every tile of every sequence with rows, longest first.</summary>
    public static QueryTile[] Enumerate(AttentionPlan plan, int rowsPerTile) =>
        [.. InOrder(plan, rowsPerTile).OrderByDescending(t => t.Cost)];

    /// <summary>
    /// Every tile in groups of up to <paramref name="tilesPerGroup"/> consecutive tiles of one
    /// sequence and kv head (which read the same keys and values), most expensive group first.
    /// </summary>
    public static QueryTile[][] Groups(AttentionPlan plan, int rowsPerTile, int tilesPerGroup)
    {
        var groups = new List<QueryTile[]>();
        var current = new List<QueryTile>(tilesPerGroup);
        foreach (var tile in InOrder(plan, rowsPerTile))
        {
            if (current.Count == tilesPerGroup || (current.Count > 0 && (current[0].Sequence, current[0].KvHead) != (tile.Sequence, tile.KvHead)))
            {
                groups.Add([.. current]);
                current.Clear();
            }
            current.Add(tile);
        }
        if (current.Count > 0) groups.Add([.. current]);
        // Among equal costs, items taken one after another (so run at the same time) are of
        // different sequences or of kv heads two apart: the output rows of heads h and h + 1 at one
        // position meet inside a cache line, which two workers writing them at once would share.
        return [.. groups.OrderByDescending(g => g.Sum(t => t.Cost))
            .ThenBy(g => g[0].FirstRow).ThenBy(g => g[0].KvHead % 2).ThenBy(g => g[0].KvHead / 2).ThenBy(g => g[0].Sequence)];
    }

    /// <summary>How many tiles <see cref="Enumerate"/> lists.</summary>
    public static int Count(AttentionPlan plan, int rowsPerTile)
    {
        var layout = plan.Layout;
        int count = 0;
        for (int b = 0; b < layout.Batch; b++)
            count += (layout.QueryCount(b) * plan.GroupSize + rowsPerTile - 1) / rowsPerTile * plan.Problem.NheadsKv;
        return count;
    }

    private static List<QueryTile> InOrder(AttentionPlan plan, int rowsPerTile)
    {
        var layout = plan.Layout;
        int heads = plan.GroupSize;
        var tiles = new List<QueryTile>();
        for (int b = 0; b < layout.Batch; b++)
        {
            int queryCount = layout.QueryCount(b), keyCount = layout.KeyCount(b);
            int rows = queryCount * heads;
            for (int kvHead = 0; kvHead < plan.Problem.NheadsKv; kvHead++)
                for (int first = 0; first < rows; first += rowsPerTile)
                {
                    int count = Math.Min(rowsPerTile, rows - first);
                    // Visible ranges move right with the position, so the first and last rows bound the union.
                    int begin = plan.VisibleKeys(first / heads, queryCount, keyCount).Begin;
                    int end = plan.VisibleKeys((first + count - 1) / heads, queryCount, keyCount).End;
                    tiles.Add(new QueryTile(b, kvHead, first, count, begin, Math.Max(begin, end)));
                }
        }
        return tiles;
    }
}
