/**
 * A cursor-paged list: `for await (const item of list)` walks every item, fetching pages
 * as it goes; `pages()` walks the pages; `first()` is one page; `toArray()` everything.
 */
export class CursorList {
    fetchPage;
    constructor(fetchPage) {
        this.fetchPage = fetchPage;
    }
    /** The first page only. */
    first() {
        return this.fetchPage(undefined);
    }
    /** Every page, in order. */
    async *pages() {
        let cursor;
        for (;;) {
            const page = await this.fetchPage(cursor);
            yield page;
            if (!page.has_more || !page.next_cursor)
                return;
            cursor = page.next_cursor;
        }
    }
    async *[Symbol.asyncIterator]() {
        for await (const page of this.pages())
            yield* page.data;
    }
    /** Every item in one array (mind large lists). */
    async toArray() {
        const all = [];
        for await (const item of this)
            all.push(item);
        return all;
    }
}
