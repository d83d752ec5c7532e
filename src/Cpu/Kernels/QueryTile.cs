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
    public static QueryTile[] Enumerate(AttentionPlan plan, int rowsPerTile)
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
        return [.. tiles.OrderByDescending(t => t.Cost)];
    }
}
