import IconButton from '@mui/material/IconButton';
import Tooltip from '@mui/material/Tooltip';
import { useTranslation } from 'mirador';
import { FindSimilarIcon } from './FindSimilarIcon';

/**
 * The window top-bar control: starts drawing a box on the page (and opens the results panel,
 * which also lists the page's marked regions for keyboard users); pressed again, cancels.
 */
export function FindSimilarButton({
  drawing = false, enabled = true, openPanel, setMode, windowId,
}) {
  const { t } = useTranslation();
  if (!enabled) return null;
  const label = drawing ? t('findSimilarCancelDraw') : t('findSimilar');
  return (
    <Tooltip title={label}>
      <IconButton
        aria-label={label}
        aria-pressed={drawing}
        className="mirador-find-similar-button"
        color={drawing ? 'primary' : 'default'}
        onClick={() => {
          if (!drawing) openPanel(windowId);
          setMode(windowId, drawing ? 'idle' : 'draw');
        }}
      >
        <FindSimilarIcon />
      </IconButton>
    </Tooltip>
  );
}
