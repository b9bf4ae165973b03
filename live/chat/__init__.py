"""The show's chat: the text policy, moderation and comment-to-buy (docs/chat.md)."""
